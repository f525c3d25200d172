"""The trusted half of the export: does the grader take only plain files and plain data
from the folder the sandbox wrote?"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from autograder.course.settings import Assignment
from autograder.grading import messages
from autograder.grading.export import (
    ANSWERS_FILE,
    HISTORIES_FILE,
    MODELS_DIR,
    TakenModels,
    collect_exports,
    export_expression,
    take_complete_models,
)

A = Assignment(assignment_id="a", notebook="a.ipynb", answer_names=("x", "y", "z"),
               model_names=("m", "n"), history_names=("h",), points={"q": 1})


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    (folder / MODELS_DIR).mkdir(parents=True)
    return folder


def write_answers(folder: Path, answers: dict, errors: dict | None = None) -> None:
    (folder / ANSWERS_FILE).write_text(json.dumps({"answers": answers, "errors": errors or {}}))


def test_plain_answers_are_taken_and_unknown_names_dropped(export_dir, tmp_path):
    """Are JSON answers for known names kept, and names the assignment does not list dropped?"""
    write_answers(export_dir, {"x": 416, "y": [None, 7, 7, 2048], "evil": 1}, {"z": "is a set"})
    (export_dir / HISTORIES_FILE).write_text("{}")
    facts = collect_exports(export_dir, tmp_path / "out", assignment=A, export_mb=10)
    assert facts.answers == {"x": 416, "y": [None, 7, 7, 2048]}
    assert facts.answer_errors == {"z": "is a set"}
    assert facts.notes == ()


@pytest.mark.parametrize("steps, kept", [
    ({"h": 4}, {"h": 4}),
    ({"h": 4, "evil": 5}, {"h": 4}),
    ({"h": True}, {}),
    ({"h": 4.0}, {}),
    ({"h": 0}, {}),
    ({"h": 10**12}, {}),
    ([4], {}),
])
def test_a_historys_batches_per_epoch_are_taken_only_as_a_count(export_dir, tmp_path, steps, kept):
    """Is the batches-per-epoch count of a kept history taken when it is a whole number a fit can
    take, and left out otherwise (a flag, a float, zero, a list, an unknown name), with the facts
    folder the checker reads saying the same?"""
    (export_dir / ANSWERS_FILE).write_text(json.dumps(
        {"answers": {}, "errors": {}, "steps_per_epoch": steps}))
    (export_dir / HISTORIES_FILE).write_text(json.dumps({"h": {"loss": [1.0]}}))
    facts = collect_exports(export_dir, tmp_path / "out", assignment=A, export_mb=10)
    assert facts.steps_per_epoch == kept
    assert json.loads((tmp_path / "out" / ANSWERS_FILE).read_text())["steps_per_epoch"] == kept


def test_no_count_is_kept_for_a_history_that_was_refused(export_dir, tmp_path):
    """A history with a non-finite value is left out; is its count left out with it?"""
    (export_dir / ANSWERS_FILE).write_text(json.dumps(
        {"answers": {}, "errors": {}, "steps_per_epoch": {"h": 4}}))
    (export_dir / HISTORIES_FILE).write_text('{"h": {"loss": [1e999]}}')
    facts = collect_exports(export_dir, tmp_path / "out", assignment=A, export_mb=10)
    assert facts.histories == {} and facts.steps_per_epoch == {}


def test_nan_and_deep_values_are_refused(export_dir, tmp_path):
    """Is a NaN (which JSON cannot hold) refused, and a too-deep list reported per name?"""
    (export_dir / ANSWERS_FILE).write_text('{"answers": {"x": NaN}, "errors": {}}')
    facts = collect_exports(export_dir, tmp_path / "out", assignment=A, export_mb=10)
    assert facts.answers == {}
    assert "answers.json: holds NaN" in facts.notes[0]
    write_answers(export_dir, {"y": [[[[[1]]]]]})
    facts = collect_exports(export_dir, tmp_path / "out2", assignment=A, export_mb=10)
    assert "y" in facts.answer_errors


def test_symlinked_answers_file_is_refused(export_dir, tmp_path):
    """Is answers.json refused when it is a symlink (e.g. to a grader file)?"""
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"answers": {"x": 1}, "errors": {}}))
    (export_dir / ANSWERS_FILE).symlink_to(secret)
    facts = collect_exports(export_dir, tmp_path / "out", assignment=A, export_mb=10)
    assert facts.answers == {}
    assert "not a plain file" in facts.notes[0]


def test_fifo_and_hard_link_are_refused(export_dir, tmp_path):
    """Are a FIFO (would block the grader) and a hard link refused without reading them?"""
    os.mkfifo(export_dir / ANSWERS_FILE)
    target = tmp_path / "elsewhere.keras"
    target.write_bytes(b"PK\x03\x04data")
    os.link(target, export_dir / MODELS_DIR / "m.keras")
    facts = collect_exports(export_dir, tmp_path / "out", assignment=A, export_mb=10)
    assert facts.answers == {} and facts.models == {}
    assert any("not a plain file" in n for n in facts.notes)
    assert any("hard links" in n for n in facts.notes)


def test_symlinked_models_folder_is_refused(export_dir, tmp_path):
    """Is a models folder swapped for a symlink ignored (O_NOFOLLOW on every step)?"""
    (export_dir / MODELS_DIR).rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "m.keras").write_bytes(b"PK\x03\x04")
    (export_dir / MODELS_DIR).symlink_to(elsewhere)
    facts = collect_exports(export_dir, tmp_path / "out", assignment=A, export_mb=10)
    assert facts.models == {}


def test_models_are_copied_under_the_size_cap(export_dir, tmp_path):
    """Is a .keras file copied into the grader folder, a non-zip refused, and the total
    export size capped?"""
    (export_dir / MODELS_DIR / "m.keras").write_bytes(b"PK\x03\x04" + b"0" * 100)
    (export_dir / MODELS_DIR / "n.keras").write_bytes(b"#!/bin/sh\n")
    out = tmp_path / "out"
    facts = collect_exports(export_dir, out, assignment=A, export_mb=10)
    assert facts.models == {"m": out / MODELS_DIR / "m.keras"}
    assert (out / MODELS_DIR / "m.keras").read_bytes()[:4] == b"PK\x03\x04"
    assert any("n.keras is not a .keras archive" in n for n in facts.notes)
    (export_dir / MODELS_DIR / "n.keras").write_bytes(b"PK\x03\x04" + b"0" * (2 * 2**20))
    facts = collect_exports(export_dir, tmp_path / "out2", assignment=A, export_mb=1)
    assert "n" not in facts.models
    assert any("larger than" in n for n in facts.notes)


def test_oversized_json_is_refused(export_dir, tmp_path):
    """Is a JSON file above the cap refused without parsing it?"""
    write_answers(export_dir, {"x": "a" * 9000})
    facts = collect_exports(export_dir, tmp_path / "out", assignment=A, export_mb=0)
    assert facts.answers == {}
    assert "allowed" in facts.notes[0]


def test_histories_keep_only_lists_of_numbers(export_dir, tmp_path):
    """Are histories kept as lists of floats, with non-numeric series dropped?"""
    (export_dir / HISTORIES_FILE).write_text(json.dumps(
        {"h": {"loss": [1, 0.5], "bad": ["x"]}, "other": {"loss": [1]}}))
    facts = collect_exports(export_dir, tmp_path / "out", assignment=A, export_mb=10)
    assert facts.histories == {"h": {"loss": [1.0, 0.5]}}


def test_missing_export_folder_is_a_note(tmp_path):
    """Does a missing export folder give a note rather than a crash?"""
    facts = collect_exports(tmp_path / "nope", tmp_path / "out", assignment=A, export_mb=10)
    assert facts.notes == (messages.EXPORT_FAILED.format(reason="no export folder"),)


def test_export_expression_is_one_expression():
    """Is the in-kernel export a single expression (so it can go in user_expressions)?"""
    import ast

    ast.parse(export_expression(A, export_dir="/sandbox/export"), mode="eval")


def test_values_that_break_conversion_are_refused_per_name(export_dir, tmp_path):
    """Does a 5,000-digit integer (past Python's int-to-str limit) refuse the file with a reason,
    a 40-digit one refuse only that answer, and a lone surrogate become U+FFFD, not a crash?"""
    (export_dir / ANSWERS_FILE).write_text('{"answers": {"x": 1' + "0" * 5000 + '}, "errors": {}}')
    facts = collect_exports(export_dir, tmp_path / "out", assignment=A, export_mb=10)
    assert facts.answers == {}
    assert facts.notes[0] == messages.EXPORT_REFUSED_FILE.format(
        what="answers.json: holds a number too large to read")
    assert facts.answer_errors["x"] == messages.EXPORT_FILE_REFUSED_DETAIL.format(
        what="answers.json: holds a number too large to read")  # not "was not defined"
    (export_dir / ANSWERS_FILE).write_text(
        '{"answers": {"x": 1' + "0" * 40 + ', "y": "a\\ud800b"}, "errors": {}}')
    facts = collect_exports(export_dir, tmp_path / "out2", assignment=A, export_mb=10)
    assert facts.answers == {"y": "a\ufffdb"}
    assert "more than 30 digits" in facts.answer_errors["x"]


def test_a_history_with_inf_is_refused_with_a_reason(export_dir, tmp_path):
    """Is a history holding 1e999 (JSON for inf, which parse_constant never sees) refused for
    that name, with the reason, while other histories and answers are kept?"""
    write_answers(export_dir, {"x": 1})
    (export_dir / HISTORIES_FILE).write_text('{"h": {"loss": [0.5, 1e999]}}')
    facts = collect_exports(export_dir, tmp_path / "out", assignment=A, export_mb=10)
    assert facts.histories == {} and facts.answers == {"x": 1}
    assert facts.answer_errors["h"] == messages.ANSWER_NOT_FINITE


def test_a_refused_model_file_says_so_on_its_items(export_dir, tmp_path):
    """Is a model file that is not a .keras archive reported as refused for that name?"""
    write_answers(export_dir, {})
    (export_dir / MODELS_DIR / "m.keras").write_bytes(b"not a zip")
    facts = collect_exports(export_dir, tmp_path / "out", assignment=A, export_mb=10)
    assert "m" not in facts.models
    assert facts.answer_errors["m"] == messages.EXPORT_FILE_REFUSED_DETAIL.format(
        what="m.keras is not a .keras archive")


def test_the_kernel_writes_the_files_the_grader_reads():
    """Does the in-kernel export write under exactly the names the grader collects (the
    kernel cannot import them, so its file spells them; this keeps the two in step)?"""
    from autograder.grading import inkernel

    code = inkernel.source("export.py")
    for name in (ANSWERS_FILE, HISTORIES_FILE, MODELS_DIR):
        assert f'"{name}"' in code, name


def test_a_trained_model_is_exported_with_its_step_count_but_without_adams_slots(tmp_path):
    """Adam keeps two slot values per trained weight, which made the exported .keras files three
    times their weights (seconds of every grade, issue 12): does the export leave the slots out
    and still carry all the rubric reads (the weights, the optimizer's step count, the compile
    settings)? And is the student's model itself still usable, as it would be in their kernel?"""
    import keras
    import numpy as np

    from autograder.grading.evidence import compile_facts, optimizer_iterations

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(3e-4), loss="binary_crossentropy",
                  metrics=["accuracy"])
    x = np.random.default_rng(0).random((40, 64)).astype("float32")
    y = (x[:, 0] > 0.5).astype("float32")
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)  # 3 epochs x 5 batches
    as_saved = tmp_path / "as-saved.keras"
    model.save(as_saved)

    class Shell:  # what the export asks of get_ipython()
        user_ns = {"m": model, "h": history}
        input_transformers_post: list = []
        ast_transformers: list = []

    export = tmp_path / "export"
    export.mkdir()
    eval(export_expression(A, export_dir=str(export)), {"get_ipython": lambda: Shell})
    exported = export / MODELS_DIR / "m.keras"
    # The History's batches per epoch travel beside the answers; a dict records no fit.
    assert json.loads((export / ANSWERS_FILE).read_text())["steps_per_epoch"] == {"h": 5}
    Shell.user_ns = {"h": dict(history.history)}
    typed = tmp_path / "typed"
    typed.mkdir()
    eval(export_expression(A, export_dir=str(typed)), {"get_ipython": lambda: Shell})
    assert json.loads((typed / ANSWERS_FILE).read_text())["steps_per_epoch"] == {}

    assert optimizer_iterations(exported) == optimizer_iterations(as_saved) == 15
    assert compile_facts(exported) == compile_facts(as_saved)
    assert compile_facts(exported)["optimizer"] == "Adam"
    assert exported.stat().st_size < 0.5 * as_saved.stat().st_size
    loaded = keras.models.load_model(exported, safe_mode=True, compile=False)
    for mine, theirs in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert model.optimizer.learning_rate.numpy() == np.float32(3e-4)


# ---------------------------------------------------------------------------------------
# Model files taken while the export still runs (issue 12)


def _keras_bytes(tag: bytes, size: int = 100) -> bytes:
    return b"PK\x03\x04" + tag + b"0" * size


def test_a_finished_model_is_taken_while_the_export_runs_and_counts_as_collected(export_dir,
                                                                                tmp_path):
    """Is a model file the kernel finished taken at once (into the facts folder), and is that
    copy what the facts hold afterwards, even when the kernel changed the file later?"""
    out, taken = tmp_path / "out", TakenModels()
    (export_dir / MODELS_DIR / "m.keras").write_bytes(_keras_bytes(b"first"))
    assert take_complete_models(export_dir, out, assignment=A, export_mb=10, taken=taken) == ["m"]
    assert take_complete_models(export_dir, out, assignment=A, export_mb=10, taken=taken) == []
    (export_dir / MODELS_DIR / "m.keras").write_bytes(_keras_bytes(b"later"))
    (export_dir / MODELS_DIR / "n.keras").write_bytes(_keras_bytes(b"n"))
    write_answers(export_dir, {"x": 1})
    facts = collect_exports(export_dir, out, assignment=A, export_mb=10, taken=taken)
    assert facts.models == {"m": out / MODELS_DIR / "m.keras", "n": out / MODELS_DIR / "n.keras"}
    assert (out / MODELS_DIR / "m.keras").read_bytes() == _keras_bytes(b"first")
    assert (out / MODELS_DIR / "n.keras").read_bytes() == _keras_bytes(b"n")
    assert facts.answers == {"x": 1}


def test_a_file_still_being_written_or_not_plain_is_not_taken_early(export_dir, tmp_path):
    """Only complete files under models/ are taken (the export writes aside, in models/.partial,
    then renames); a link, a hard-linked file or a file that is not a .keras archive is left for
    the collection after the sandbox died, which says why."""
    out, taken = tmp_path / "out", TakenModels()
    (export_dir / MODELS_DIR / ".partial").mkdir()
    (export_dir / MODELS_DIR / ".partial" / "m.keras").write_bytes(_keras_bytes(b"half"))
    secret = tmp_path / "secret.keras"
    secret.write_bytes(_keras_bytes(b"secret"))
    (export_dir / MODELS_DIR / "n.keras").symlink_to(secret)
    assert take_complete_models(export_dir, out, assignment=A, export_mb=10, taken=taken) == []
    (export_dir / MODELS_DIR / "n.keras").unlink()
    os.link(secret, export_dir / MODELS_DIR / "n.keras")
    (export_dir / MODELS_DIR / "m.keras").write_bytes(b"#!/bin/sh\n")
    assert take_complete_models(export_dir, out, assignment=A, export_mb=10, taken=taken) == []
    assert not (out / MODELS_DIR).exists() or not any((out / MODELS_DIR).iterdir())
    facts = collect_exports(export_dir, out, assignment=A, export_mb=10, taken=taken)
    assert facts.models == {}
    assert any("n.keras has 2 hard links" in n for n in facts.notes)
    assert any("m.keras is not a .keras archive" in n for n in facts.notes)


def test_models_taken_early_count_against_the_export_size_cap(export_dir, tmp_path):
    """Does a file taken early use up the same cap, so the later collection refuses what no
    longer fits (as it would had both been collected at the end)?"""
    out, taken = tmp_path / "out", TakenModels()
    (export_dir / MODELS_DIR / "m.keras").write_bytes(_keras_bytes(b"m", 700 * 2**10))
    assert take_complete_models(export_dir, out, assignment=A, export_mb=1, taken=taken) == ["m"]
    (export_dir / MODELS_DIR / "n.keras").write_bytes(_keras_bytes(b"n", 700 * 2**10))
    assert take_complete_models(export_dir, out, assignment=A, export_mb=1, taken=taken) == []
    facts = collect_exports(export_dir, out, assignment=A, export_mb=1, taken=taken)
    assert list(facts.models) == ["m"]
    assert any("larger than" in n for n in facts.notes)


def test_models_taken_from_an_export_that_did_not_finish_are_deleted(export_dir, tmp_path):
    out, taken = tmp_path / "out", TakenModels()
    (export_dir / MODELS_DIR / "m.keras").write_bytes(_keras_bytes(b"m"))
    take_complete_models(export_dir, out, assignment=A, export_mb=10, taken=taken)
    assert (out / MODELS_DIR / "m.keras").is_file()
    taken.discard()
    assert taken.files == {} and not (out / MODELS_DIR / "m.keras").exists()


def test_the_kernel_writes_the_largest_model_first_each_complete_before_it_appears(tmp_path):
    """The in-kernel export saves the largest model first (the checker loads it while the others
    are written) and each file appears under models/ only once complete (renamed from
    models/.partial), which is what lets the grader take it early."""
    import keras

    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    large = keras.Sequential([keras.Input((64,)), keras.layers.Dense(512), keras.layers.Dense(1)])
    seen: list[tuple[str, list[str]]] = []
    export = tmp_path / "export"
    export.mkdir()
    real_save = keras.Model.save

    def watching_save(model, path, *args, **kwargs):
        seen.append((Path(path).parent.name, sorted(p.name for p in (export / MODELS_DIR).glob("*.keras"))))
        return real_save(model, path, *args, **kwargs)

    class Shell:
        user_ns = {"m": small, "n": large}
        input_transformers_post: list = []
        ast_transformers: list = []

    keras.Model.save = watching_save
    try:
        eval(export_expression(A, export_dir=str(export)), {"get_ipython": lambda: Shell})
    finally:
        keras.Model.save = real_save
    assert seen == [(".partial", []), (".partial", ["n.keras"])]
    assert sorted(p.name for p in (export / MODELS_DIR).glob("*.keras")) == ["m.keras", "n.keras"]
    assert not list((export / MODELS_DIR / ".partial").iterdir())


def test_a_model_file_that_grows_while_copied_is_refused_and_the_rest_collected(
        export_dir, tmp_path, monkeypatch):
    """A model file that grows after it was measured (a writer still at it) is refused with a
    note naming it, its partial copy is gone, and the other model and the answers are still
    collected: one bad file never costs the rest of the export."""
    from autograder.grading import export as export_module

    write_answers(export_dir, {"x": 3})
    grows = export_dir / MODELS_DIR / "n.keras"
    (export_dir / MODELS_DIR / "m.keras").write_bytes(_keras_bytes(b"m"))
    grows.write_bytes(_keras_bytes(b"n", size=2**19))
    opened = export_module._open_regular

    def open_then_grow(dir_fd, name):
        fd, size = opened(dir_fd, name)
        if name == "n.keras":
            with grows.open("ab") as writer:
                writer.write(b"0" * 2**20)
        return fd, size

    monkeypatch.setattr(export_module, "_open_regular", open_then_grow)
    out = tmp_path / "out"
    facts = collect_exports(export_dir, out, assignment=A, export_mb=1)
    assert facts.models == {"m": out / MODELS_DIR / "m.keras"}
    assert facts.answers == {"x": 3}
    assert any("n.keras grew while being copied" in n for n in facts.notes)
    assert "grew while being copied" in facts.answer_errors["n"]
    assert not (out / MODELS_DIR / "n.keras").exists()


def test_collecting_the_exports_never_closes_the_facts_folder_to_its_group(export_dir, tmp_path):
    """The grader shares the facts folder with the checker's group as soon as it takes a model,
    and the checker may be loading that model while the exports are collected: does collecting
    keep the folder open to its group (and closed to other users), where it made it owner-only
    and the checker's load failed?"""
    out, taken = tmp_path / "out", TakenModels()
    (export_dir / MODELS_DIR / "m.keras").write_bytes(_keras_bytes(b"first"))
    assert take_complete_models(export_dir, out, assignment=A, export_mb=10, taken=taken) == ["m"]
    out.chmod(0o750)  # what open_to_checker leaves (as root: root:course-grader)
    (out / MODELS_DIR).chmod(0o750)
    write_answers(export_dir, {"x": 1})
    collect_exports(export_dir, out, assignment=A, export_mb=10, taken=taken)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert stat.S_IMODE((out / MODELS_DIR).stat().st_mode) == 0o750
    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o777)
    fresh.chmod(0o777)
    collect_exports(export_dir, fresh, assignment=A, export_mb=10)
    assert stat.S_IMODE(fresh.stat().st_mode) & 0o027 == 0  # never others', never group-writable
