"""Stage 2: get plain facts out of the student's kernel, and trust none of them blindly.

Two halves that never share an object:

* :func:`export_expression` wraps ``inkernel/export.py``, the code the grader runs *inside* the kernel after
  the last cell. It is sent as an ``execute_request`` user expression, which IPython
  evaluates with ``eval`` and never passes through input transformers or AST
  transformers a student may have installed. It writes, into the sandbox's export
  folder only, ``answers.json`` (answer values as JSON types, and a reason for each name
  that could not be exported), ``histories.json`` and ``models/<name>.keras``.
* :func:`collect_exports` runs in the grader, after the whole cgroup was killed. It
  copies only regular files with one link (opened with ``O_NOFOLLOW`` relative to a
  directory descriptor, so a symlink planted anywhere on the path is refused), under
  byte caps, into a folder the sandbox never could write, and parses the JSON with
  size limits and a schema. Pickle is never used. What passes is written once, straight
  into that folder in the layout the checker reads (:func:`write_facts`): it is the
  submission's facts folder. Model files the kernel finished while the export still ran
  were already taken, under the same checks, by :func:`take_complete_models` (each one
  as it was once complete), so the checker could start loading them (issue 12).

The kernel may monkeypatch ``json`` or ``keras`` in its own process: fine, because what
is exported is exactly what the student could have assigned anyway, and the trusted
checker re-reads the files in another process (``load_model(safe_mode=True)``).

Alternatives rejected: returning values in the execute reply (size-capped only by zmq
and parsed before validation); ``dill``/pickle of the namespace (code execution in
the grader); running the export as a normal cell (student input transformers rewrite
it); exporting even after the kernel died (files in the export folder could then be
anything the student planted — the result says the answers were lost instead).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.course.settings import Assignment
from autograder.grading import inkernel, messages
from autograder.grading.evidence import ANSWERS_FILE, HISTORIES_FILE, MODELS_DIR  # the facts folder's names, one place


MAX_STRING_CHARS = 10_000
MAX_LIST_ITEMS = 10_000
MAX_DEPTH = 4
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_HISTORY_KEYS = 64
MAX_REASON_CHARS = 300
MAX_INT_DIGITS = 30  # a parameter count has ~8 digits; 10**4300 once stopped a whole grade
KERAS_MAGIC = b"PK\x03\x04"  # a .keras file is a zip archive
_SURROGATE = re.compile("[\ud800-\udfff]")  # lone halves: no UTF-8 file can hold them

def export_expression(assignment: Assignment, *, export_dir: str) -> str:
    """A single Python expression that defines and runs the export in the kernel."""
    cfg = {
        "export_dir": export_dir,
        "answers": list(assignment.answer_names),
        "models": list(assignment.model_names),
        "histories": list(assignment.history_names),
        "max_str": MAX_STRING_CHARS,
        "max_items": MAX_LIST_ITEMS,
        "max_depth": MAX_DEPTH,
        "max_int_digits": MAX_INT_DIGITS,
        "max_keys": MAX_HISTORY_KEYS,
        "templates": {
            "type": messages.ANSWER_TYPE,
            "too_big": messages.ANSWER_TOO_BIG,
            "not_finite": messages.ANSWER_NOT_FINITE,
            "not_keras": messages.MODEL_NOT_KERAS,
            "save_failed": messages.MODEL_SAVE_FAILED,
            "history": messages.HISTORY_TYPE,
        },
    }
    # exec in a fresh namespace; the student's namespace is passed in as data.
    return (
        "(lambda __g: (__import__('builtins').exec(" + repr(inkernel.source("export.py")) + ", __g), "
        "__g['__grader_export'](__import__('json').loads(" + repr(json.dumps(cfg)) + "), "
        "get_ipython().user_ns))[1])({'__builtins__': __import__('builtins'), "
        "'get_ipython': get_ipython})"
    )


# ---------------------------------------------------------------------------------------
# Grader side
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedFacts:
    """What survived validation, with paths only inside the grader's own folder."""

    answers: dict[str, Any] = field(default_factory=dict)
    answer_errors: dict[str, str] = field(default_factory=dict)
    models: dict[str, Path] = field(default_factory=dict)
    histories: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    steps_per_epoch: dict[str, int] = field(default_factory=dict)
    """For each history that is a Keras History: the batches per epoch of the fit that made it."""
    notes: tuple[str, ...] = ()


class _Refused(Exception):
    """A file or value the grader will not take; the message says why (no paths)."""


def collect_exports(
    export_dir: Path, dest_dir: Path, *, assignment: Assignment, export_mb: int,
    taken: TakenModels | None = None,
) -> ExportedFacts:
    """Copy and validate the kernel's exports. Call only after the sandbox is dead.
    ``taken``: the model files :func:`take_complete_models` copied while the export ran; they
    are the submission's models as they are (a later change to the file in the export folder
    is not looked at) and count against the same size cap."""
    notes: list[str] = []
    taken = taken or TakenModels()
    budget = [export_mb * 1024 * 1024 - taken.bytes]
    dest_dir.mkdir(parents=True, exist_ok=True)
    # Closed to other users, but never to its group: as root the folder is already shared with
    # the checker (the course-grader group), which may be loading a model taken from this
    # export at this moment. Owner-only here made that load fail as "file not found" on a
    # slow machine, and cost the student the model's items.
    os.chmod(dest_dir, stat.S_IMODE(os.stat(dest_dir).st_mode) & 0o750)
    try:
        root_fd = os.open(export_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        facts = ExportedFacts(notes=(messages.EXPORT_FAILED.format(reason="no export folder"),))
        write_facts(facts, dest_dir)
        return facts
    try:
        answers: dict[str, Any] = {}
        errors: dict[str, str] = {}
        histories: dict[str, dict[str, list[float]]] = {}
        steps: dict[str, int] = {}
        try:
            raw = _read_regular(root_fd, ANSWERS_FILE, min(MAX_JSON_BYTES, budget[0]))
            budget[0] -= len(raw)
            parsed = _parse_json(raw)
            answers, errors = _validate_answers(parsed, assignment)
            steps = _validate_steps(parsed, assignment)
        except _Refused as exc:
            what = f"{ANSWERS_FILE}: {exc}"
            notes.append(messages.EXPORT_REFUSED_FILE.format(what=what))
            # Say what happened on every item that needed an answer, not "was not defined".
            errors = {n: messages.EXPORT_FILE_REFUSED_DETAIL.format(what=what)
                      for n in assignment.answer_names}
        try:
            raw = _read_regular(root_fd, HISTORIES_FILE, min(MAX_JSON_BYTES, budget[0]))
            budget[0] -= len(raw)
            histories = _validate_histories(_parse_json(raw), assignment, errors)
        except _Refused as exc:
            what = f"{HISTORIES_FILE}: {exc}"
            notes.append(messages.EXPORT_REFUSED_FILE.format(what=what))
            for n in assignment.history_names:
                errors.setdefault(n, messages.EXPORT_FILE_REFUSED_DETAIL.format(what=what))
        models = _copy_models(root_fd, dest_dir, assignment, budget, notes, errors, taken)
    finally:
        os.close(root_fd)
    facts = ExportedFacts(answers=answers, answer_errors=errors, models=models,
                          histories=histories,
                          steps_per_epoch={n: v for n, v in steps.items() if n in histories},
                          notes=tuple(notes))
    write_facts(facts, dest_dir)
    return facts


@dataclass
class TakenModels:
    """Model files taken out of the export folder while the export still ran: name -> (the
    grader's copy, its size in bytes)."""

    files: dict[str, tuple[Path, int]] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.files.values())

    def discard(self) -> None:
        """Forget and delete every copy (the export did not finish: nothing of it counts)."""
        for path, _ in self.files.values():
            path.unlink(missing_ok=True)
        self.files.clear()


def take_complete_models(export_dir: Path, dest_dir: Path, *, assignment: Assignment,
                         export_mb: int, taken: TakenModels) -> list[str]:
    """While the kernel is still exporting: copy each model file it has finished (the export
    writes ``models/.partial/<name>.keras`` and renames it into ``models/``) into
    ``dest_dir/models``, under the checks :func:`collect_exports` applies (a regular file with
    one link, opened without following links, a ``.keras`` archive, within the size cap), so
    the checker can load it while the other models are still being written (issue 12).
    Returns the names taken now. A file that fails a check is left for
    :func:`collect_exports`, which says why once the sandbox is dead.

    What is taken is the file as it was once complete. Whatever the kernel does to it later is
    not looked at: only a submission's own code could change it, and any file it could put
    there is one it could have assigned to the model's name instead."""
    new: list[str] = []
    try:
        root_fd = os.open(export_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return new
    try:
        models_fd = os.open(MODELS_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                            dir_fd=root_fd)
    except OSError:
        os.close(root_fd)
        return new
    try:
        for name in assignment.model_names:
            if name in taken.files:
                continue
            try:
                target, copied = _copy_model(models_fd, name, dest_dir / MODELS_DIR,
                                             room=export_mb * 2**20 - taken.bytes)
            except (FileNotFoundError, _Refused, OSError):
                continue
            taken.files[name] = (target, copied)
            new.append(name)
    finally:
        os.close(models_fd)
        os.close(root_fd)
    return new


def write_facts(facts: ExportedFacts, facts_dir: Path) -> Path:
    """Lay validated facts out as the checker reads them (:mod:`evidence`): the answers with
    their reasons, the histories, the models beside them. Nothing exported is still a facts
    folder, in which every name is missing."""
    (facts_dir / MODELS_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    (facts_dir / ANSWERS_FILE).write_text(json.dumps(
        {"answers": facts.answers, "errors": facts.answer_errors,
         "steps_per_epoch": facts.steps_per_epoch}))
    (facts_dir / HISTORIES_FILE).write_text(json.dumps(facts.histories))
    return facts_dir


def _open_regular(dir_fd: int, name: str) -> tuple[int, int]:
    """(fd, size) of a regular, singly-linked file; anything else is refused."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _Refused(f"{name} is not a plain file ({exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _Refused(f"{name} is not a plain file")
    if info.st_nlink != 1:
        os.close(fd)
        raise _Refused(f"{name} has {info.st_nlink} hard links")
    return fd, info.st_size


def _read_regular(dir_fd: int, name: str, limit: int) -> bytes:
    try:
        fd, size = _open_regular(dir_fd, name)
    except FileNotFoundError:
        raise _Refused("missing") from None
    try:
        if size > limit:
            raise _Refused(f"{size:,} bytes, more than the {limit:,} allowed")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise _Refused(f"more than the {limit:,} bytes allowed")
        return data
    finally:
        os.close(fd)


class _TooBig(_Refused):
    """A model file larger than the room left under the export cap."""

    def __init__(self, file_name: str, size: int, room: int) -> None:
        super().__init__(f"{file_name}: {size:,} bytes, more than the {room:,} left")
        self.file_name, self.size, self.room = file_name, size, room


def _copy_model(models_fd: int, name: str, target_dir: Path, *, room: int) -> tuple[Path, int]:
    """Copy ``<name>.keras`` out of the export's models folder into ``target_dir``: a regular
    file with one link, opened without following links, at most ``room`` bytes (also while it
    is read: a file that grows is refused), a ``.keras`` archive. Returns (copy, size). Raises
    FileNotFoundError when there is no such file, :class:`_TooBig` or :class:`_Refused`
    otherwise; a refused copy is deleted."""
    file_name = f"{name}.keras"
    fd, size = _open_regular(models_fd, file_name)
    target = target_dir / file_name
    try:
        if size > room:
            raise _TooBig(file_name, size, room)
        target_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            copied = _copy_fd(fd, target, limit=room)
        except _Refused as exc:
            raise _Refused(f"{file_name} {exc}") from None
        with target.open("rb") as check:
            if check.read(4) != KERAS_MAGIC:
                raise _Refused(f"{file_name} is not a .keras archive")
        return target, copied
    except FileExistsError:
        raise  # not ours to delete
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def _copy_models(root_fd: int, dest_dir: Path, assignment: Assignment, budget: list[int],
                 notes: list[str], errors: dict[str, str], taken: TakenModels) -> dict[str, Path]:
    models: dict[str, Path] = {name: path for name, (path, _) in taken.files.items()
                               if name in assignment.model_names}
    try:
        models_fd = os.open(MODELS_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                            dir_fd=root_fd)
    except OSError:
        return models
    try:
        target_dir = dest_dir / MODELS_DIR
        target_dir.mkdir(mode=0o700, exist_ok=True)
        for name in assignment.model_names:
            if name in models:
                continue
            try:
                target, copied = _copy_model(models_fd, name, target_dir, room=budget[0])
            except FileNotFoundError:
                continue
            except _TooBig as exc:
                notes.append(messages.EXPORT_TOO_BIG.format(
                    limit_mb=exc.room / 2**20, what=exc.file_name))
                errors.setdefault(name, messages.ANSWER_TOO_BIG.format(
                    what=f"{exc.size:,} bytes"))
                continue
            except _Refused as exc:
                notes.append(messages.EXPORT_REFUSED_FILE.format(what=str(exc)))
                errors.setdefault(name, messages.EXPORT_FILE_REFUSED_DETAIL.format(what=exc))
                continue
            budget[0] -= copied
            models[name] = target
    finally:
        os.close(models_fd)
    return models


def _copy_fd(fd: int, target: Path, *, limit: int) -> int:
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    copied = 0
    try:
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return copied
            copied += len(chunk)
            if copied > limit:  # the file grew after fstat: a live writer; refuse
                raise _Refused("grew while being copied")
            os.write(out, chunk)
    finally:
        os.close(out)


def _parse_json(raw: bytes) -> Any:
    def no_constants(name: str) -> None:
        raise _Refused(f"holds {name}")

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _Refused(f"not valid JSON ({type(exc).__name__})") from None
    except ValueError:  # e.g. an integer past Python's int-to-str digit limit
        raise _Refused("holds a number too large to read") from None


def plain_value(value: Any, depth: int = 0) -> Any:
    """``value`` if it is a JSON scalar or a bounded (nested) list of them, else refused."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) >= 10**MAX_INT_DIGITS:
            raise _Refused(messages.ANSWER_TOO_BIG.format(
                what=f"a whole number of more than {MAX_INT_DIGITS} digits"))
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Refused(messages.ANSWER_NOT_FINITE)
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise _Refused(messages.ANSWER_TOO_BIG.format(what=f"{len(value)} characters"))
        return clean_text(value)
    if isinstance(value, list) and depth < MAX_DEPTH and len(value) <= MAX_LIST_ITEMS:
        return [plain_value(v, depth + 1) for v in value]
    raise _Refused(messages.ANSWER_TYPE.format(type_name=type(value).__name__))


def _validate_answers(data: Any, assignment: Assignment) -> tuple[dict[str, Any], dict[str, str]]:
    if not isinstance(data, dict) or not isinstance(data.get("answers"), dict) \
            or not isinstance(data.get("errors", {}), dict):
        raise _Refused("not an object with answers and errors")
    known = {*assignment.answer_names, *assignment.model_names, *assignment.history_names}
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, value in data["answers"].items():
        if name not in assignment.answer_names:
            continue
        try:
            answers[name] = plain_value(value)
        except _Refused as exc:
            errors[name] = str(exc)
    for name, reason in data.get("errors", {}).items():
        if name in known and name not in answers:
            errors[name] = clean_text(str(reason)[:MAX_REASON_CHARS]) if isinstance(reason, str) \
                else "?"
    return answers, errors


def _validate_steps(data: dict[str, Any], assignment: Assignment) -> dict[str, int]:
    """Batches per epoch of each history's fit, as whole numbers a fit can take; anything else
    is left out (the rubric then has no count to compare, as for a history typed in)."""
    raw = data.get("steps_per_epoch", {})
    if not isinstance(raw, dict):
        return {}
    return {name: value for name, value in raw.items()
            if name in assignment.history_names and type(value) is int and 0 < value < 10**9}


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (which no UTF-8 file can hold) replaced by U+FFFD."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def _validate_histories(data: Any, assignment: Assignment, errors: dict[str, str]
                        ) -> dict[str, dict[str, list[float]]]:
    """Histories as lists of finite numbers; one with NaN or ±inf (1e999 parses as inf) is
    left out with the reason in ``errors``, like a value the kernel refused."""
    if not isinstance(data, dict):
        raise _Refused("not an object")
    histories: dict[str, dict[str, list[float]]] = {}
    for name, series in data.items():
        if name not in assignment.history_names or not isinstance(series, dict):
            continue
        clean: dict[str, list[float]] = {}
        for key, values in list(series.items())[:MAX_HISTORY_KEYS]:
            if (isinstance(key, str) and isinstance(values, list)
                    and len(values) <= MAX_LIST_ITEMS
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                            for v in values)):
                try:
                    floats = [float(v) for v in values]
                except OverflowError:  # an integer too large for a float
                    floats = [math.inf]
                if not all(math.isfinite(v) for v in floats):
                    errors[name] = messages.ANSWER_NOT_FINITE
                    break
                clean[clean_text(key[:100])] = floats
        else:
            histories[name] = clean
    return histories
