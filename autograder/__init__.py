"""An auto-graded deep-learning assignment kit: release, grade in a sandbox, host on JupyterHub."""

import sys as _sys

__version__ = "0.1.0"

# jsonschema (under nbformat, which every grading and release command imports) loads the
# optional ``rfc3987_syntax`` for its "iri" format checker when installed, and that package
# compiles 38 Lark grammars at import: 4.6 s of every `course` command on a 2-core machine
# (measured with cProfile for issue 12). No schema the kit validates (nbformat's notebook
# schema, the course config) uses the "iri" formats, so the import is declined here: a
# ``None`` in sys.modules makes ``import rfc3987_syntax`` raise ImportError, which
# jsonschema handles by leaving those two formats unchecked. A process that imported it
# already keeps it.
_sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
