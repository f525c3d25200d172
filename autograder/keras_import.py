"""Import Keras (and TensorFlow) once, the way every part of the kit wants it.

Two things happen at that import that no user asked for:

* TensorFlow's C++ start-up notices (absl's "WARNING: All log messages before
  absl::InitializeLog() is called are written to STDERR", then oneDNN's "custom operations
  are on" line) go straight to file descriptor 2. ``TF_CPP_MIN_LOG_LEVEL`` does not stop
  them (absl writes everything logged before its initialisation), and on some CPUs they
  reached the instructor's console in the middle of ``course demo``. The import runs with
  descriptor 2 caught; these known notices are dropped and every other line is written
  back to stderr, so a real error still shows. The descriptor is the whole process's: a line
  another thread writes meanwhile comes back after the import, and no process the kit starts
  inherits the catch (kernels get /dev/null or their log, checkers and tools pipes).
* Keras imports ``matplotlib.pyplot`` (for ``keras.visualization``, which the kit never
  uses), and in a checker's fresh ``MPLCONFIGDIR`` matplotlib also rebuilds its font list:
  about 0.7 CPU-s of every submission's checker (issue 12). Keras treats a matplotlib it
  cannot import as absent, so the import is declined while Keras loads and allowed again
  afterwards: code that draws can still import matplotlib itself.
"""

from __future__ import annotations

import os
import sys
import tempfile
from types import ModuleType

START_UP_NOTICES = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "cpu_feature_guard",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "rebuild TensorFlow with the appropriate compiler flags",  # that notice's second line
)
"""Parts of the lines TensorFlow writes to stderr at import that say nothing is wrong."""


def import_keras() -> ModuleType:
    """The ``keras`` module, imported without start-up chatter or matplotlib."""
    if "keras" in sys.modules:
        import keras

        return keras
    declined = "matplotlib" not in sys.modules
    if declined:
        sys.modules["matplotlib"] = None  # type: ignore[assignment]  (ImportError on import)
    try:
        with _start_up_notices_dropped():
            import keras
    finally:
        if declined and sys.modules.get("matplotlib", ...) is None:
            del sys.modules["matplotlib"]
    return keras


class _start_up_notices_dropped:
    """Catch file descriptor 2 for the block; write back every line that is not a
    :data:`START_UP_NOTICES` one."""

    def __enter__(self) -> None:
        sys.stderr.flush()
        self._caught = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._caught.fileno(), 2)

    def __exit__(self, *exc: object) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        with self._caught:
            self._caught.seek(0)
            text = self._caught.read().decode("utf-8", errors="replace")
        kept = [line for line in text.splitlines(keepends=True)
                if not any(notice in line for notice in START_UP_NOTICES)]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
