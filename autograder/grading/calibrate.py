"""``course calibrate``: derive the answer key from the reference solution.

The source notebook (with its solutions) runs through the same execute stage as
any submission, once per calibration seed (as many seeds at once as the course's
``grading.concurrency``, each in its own slot); the trusted fact sheet measures each
run. The key holds the expected answers and model facts (identical across seeds,
or calibration fails naming what varied) and each model's accuracy distribution
on the hidden split, from which thresholds follow:
``threshold = max(10th percentile - Assignment.accuracy_margin, floor)`` where the
floor is the split's majority-class rate plus two binomial standard errors
(``p + 2·sqrt(p(1-p)/n)``): a threshold at or below it would let a model that answers
one class for every image pass. When the reference runs themselves do not all reach
the threshold (stand-in weights, the reduced profile), the accuracy item is *not
assessable* in that mode: the key lists it under ``not_assessable`` and the rubric
leaves it out of the maximum score instead of giving free points.

The key lives in ``answer_keys/`` (outside release/), one file per profile and
weights mode, because a 64-px stand-in run and a 224-px ImageNet run expect
different shapes and accuracies.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from autograder.errors import GradingError
from autograder.grading import check
from autograder.grading.evidence import FT_AGREEMENT_TOLERANCE
from autograder.grading.pipeline import (
    GradingContext,
    execute_stage,
    facts_for_checker,
    open_to_checker,
    with_embeddings,
)
from autograder.grading.submission import Submission
from autograder.progress import Progress, report

# Facts that legitimately vary between seeds (trained weights change, shapes do not).
SEED_DEPENDENT = {"chosen_model"}


def calibration_seeds(grading_seed: int, extra: tuple[int, ...]) -> tuple[int, ...]:
    """The grading seed first, then the configured ones: the reference solution, graded as a
    student's would be, is then one of the calibration runs and cannot miss its own threshold."""
    return tuple(dict.fromkeys((grading_seed, *extra)))


MIN_RUNS_FOR_SPREAD = 3
"""Fewer reference runs than this cannot show how far honest training varies (for
cnn_transfer's CNN at the full profile: 0.74 on one seed, 0.92-0.96 on others, a spread wider
than the default margin; docs/THRESHOLDS.md)."""


def few_runs_warning(key: dict[str, Any]) -> str | None:
    """What to tell staff whose key assesses accuracy from fewer than
    :data:`MIN_RUNS_FOR_SPREAD` reference runs (None otherwise)."""
    assessed = [m for m in key.get("thresholds", {}) if m not in key.get("not_assessable", {})]
    runs = len(key.get("seeds", []))
    if not assessed or runs >= MIN_RUNS_FOR_SPREAD:
        return None
    return (f"the pass marks of {', '.join(assessed)} come from {runs} reference run(s), too few "
            f"to show how far honest training varies (docs/THRESHOLDS.md), so a valid submission "
            f"may fall below them. Grade students with a key calibrated over at least "
            f"{MIN_RUNS_FOR_SPREAD} seeds: leave out --seeds to use the grading seed and the "
            f"assignment's calibration_seeds.")


def calibrate(ctx: GradingContext, *, seeds: tuple[int, ...], progress: Progress | None = None
              ) -> dict[str, Any]:
    """Run the reference solution per seed, measure it, and write the answer key."""
    from autograder.course.permissions import protect_course_files

    seeds = tuple(dict.fromkeys(seeds))  # one run per seed

    protect_course_files(ctx.course)  # every calibration starts from closed secrets
    source = Submission.read(
        ctx.course.source_dir(ctx.assignment.assignment_id) / ctx.assignment.notebook)
    if ctx.assignment.uses_backbone:
        report(progress, 0, len(seeds), "embedding the hidden splits")
    ctx = with_embeddings(ctx)
    # One reference run per seed, as many at once as the course grades submissions at once
    # (each in a slot of its own, as a batch's jobs are): the runs share nothing but the
    # cached embeddings. The sheets keep the seeds' order; the first run to fail stops the
    # runs not yet started and its error is raised.
    width = max(1, min(ctx.course.config.grading.concurrency, len(seeds)))
    report(progress, 0, len(seeds), f"reference runs, seeds {', '.join(map(str, seeds))}"
                                    + (f" ({width} at a time)" if width > 1 else ""))
    sheets: dict[int, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="calibrate") as pool:
        runs = {pool.submit(_reference_sheet, ctx, source, seed, slot=n % width): seed
                for n, seed in enumerate(seeds)}
        try:
            for done in as_completed(runs):
                sheets[runs[done]] = done.result()
                report(progress, len(sheets), len(seeds), f"reference run, seed {runs[done]}")
        except BaseException:
            for run in runs:
                run.cancel()
            raise
    report(progress, len(seeds), len(seeds), "writing the answer key")
    key = build_key([sheets[seed] for seed in seeds], margin=ctx.assignment.accuracy_margin,
                    training=training_facts(ctx))
    key.update(assignment=ctx.assignment.assignment_id, profile=ctx.profile_name,
               weights_mode=ctx.weights_mode, fingerprint=ctx.key_fingerprint())
    ctx.key_file.parent.mkdir(parents=True, exist_ok=True)
    ctx.key_file.write_text(json.dumps(key, indent=1, sort_keys=True))
    open_to_checker(ctx.key_file.parent.parent)  # answer_keys/: the checker only
    protect_course_files(ctx.course)  # and what calibrating created (the embeddings)
    return key


def _reference_sheet(ctx: GradingContext, source: Submission, seed: int, *, slot: int
                     ) -> dict[str, Any]:
    """Run the reference solution with ``seed`` (in grading slot ``slot``) and measure it."""
    seeded = replace(ctx, course=replace(ctx.course, config=replace(
        ctx.course.config, grading=replace(ctx.course.config.grading, seed=seed))))
    work = Path(tempfile.mkdtemp(prefix="course-calibrate-"))
    try:
        execution = execute_stage(seeded, source, student=f"reference-seed{seed}", slot=slot,
                                  job_dir=work / "job")
        broken = [c for c in execution.cells if c.status != "ok"]
        if broken:
            first = broken[0]
            raise GradingError(
                f"the reference solution failed at cell {first.index + 1} "
                f"({first.grade_id or 'no grade_id'}) with seed {seed}: {first.status} "
                f"{first.limit or ''} {first.message}",
                hint="run the source notebook by hand; calibration needs a clean run",
            )
        facts = facts_for_checker(execution, work)
        sheet = check.run_factsheet(
            ctx.check_inputs(facts, report_file=work / "sheet.json", with_key=False),
            answer_names=list(ctx.assignment.answer_names),
            model_names=list(ctx.assignment.model_names),
            accuracy_inputs=dict(ctx.assignment.accuracy_inputs),
            backbone=ctx.assignment.uses_backbone,
        )
        if sheet.get("missing"):
            raise GradingError(
                f"the reference solution did not define: {', '.join(sheet['missing'])}",
                hint="the names in course_config.py must all be assigned by the source notebook",
            )
        sheet["seed"] = seed
        sheet["wall_s"] = execution.wall_s
        return sheet
    finally:
        shutil.rmtree(work, ignore_errors=True)


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}


def training_facts(ctx: GradingContext) -> dict[str, Any] | None:
    """What one training run of each step-counted model (``Assignment.step_counted``) must
    amount to, from the data the students were given (their train split, counted here) and
    the course's batch size and epochs; None for an assignment that counts no steps."""
    if not ctx.assignment.step_counted:
        return None
    train_dir = ctx.validation_dir.parent / "train"
    n_train = sum(1 for p in train_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return {"n_train": n_train, "batch_size": ctx.course.config.dataset.batch_size,
            "epochs": ctx.epochs(), "counted": dict(ctx.assignment.step_counted)}


def steps_per_epoch(training: dict[str, Any]) -> int:
    return math.ceil(training["n_train"] / training["batch_size"])


def accuracy_floor(majority: float, n: int) -> float:
    """The lowest threshold that a constant answer cannot reach by chance: the majority-class
    rate plus two binomial standard errors at the split's size."""
    return majority + 2 * math.sqrt(majority * (1 - majority) / max(n, 1))


def build_key(sheets: list[dict[str, Any]], *, margin: float,
              training: dict[str, Any] | None = None) -> dict[str, Any]:
    """Combine per-seed fact sheets; pure, so it is tested without TensorFlow."""
    first = sheets[0]
    _refuse_seed_dependent_facts(sheets)
    accuracy = {m: [s["accuracy"][m] for s in sheets] for m in first["accuracy"]}
    majority = first.get("grading_majority_rate", 0.5)
    size = first.get("grading_size", 0)
    # Rounded up, so the stored threshold stays above the floor; a sheet without the split's
    # size still puts the threshold strictly above the majority rate.
    floor = math.ceil((accuracy_floor(majority, size) if size else majority + 1e-4) * 10_000) / 10_000
    thresholds, not_assessable, headroom = {}, {}, {}
    for m, v in accuracy.items():
        calibrated = max(0.0, float(np.percentile(v, 10)) - margin)
        thresholds[m] = round(max(calibrated, floor), 4)
        headroom[m] = round(min(v) - thresholds[m], 4)
        if min(v) < thresholds[m]:
            not_assessable[m] = (
                f"the reference solution reached {min(v):.0%}-{max(v):.0%} on the hidden split, "
                f"below {thresholds[m]:.0%} (majority class {majority:.0%} + 2 standard errors "
                f"at n={size}), so accuracy cannot tell this model from a constant one here")
    key = {
        "answers": first["answers"],
        "models": first["models"],
        "accuracy": accuracy,
        "validation_accuracy": {m: [s["validation_accuracy"][m] for s in sheets]
                                for m in first["validation_accuracy"]},
        "thresholds": thresholds,
        "accuracy_floor": floor,
        "grading_majority_rate": majority,
        "grading_size": size,
        "headroom": headroom,
        "not_assessable": not_assessable,
        "weak_thresholds": sorted(not_assessable),
        "seeds": [s["seed"] for s in sheets],
        "reference_wall_s": [s["wall_s"] for s in sheets],
    }
    _refuse_inconsistent_reference(sheets, training)
    if training is not None:
        # "counted" says which model trains for which epochs; the key keeps its old fields only
        public = {k: v for k, v in training.items() if k != "counted"}
        key["training"] = {**public, "steps_per_epoch": steps_per_epoch(training)}
    return key


def _refuse_seed_dependent_facts(sheets: list[dict[str, Any]]) -> None:
    """Expected answers and model structures must be the same for every seed."""
    first = sheets[0]
    for sheet in sheets[1:]:
        varied = [n for n in first["answers"] if n not in SEED_DEPENDENT
                  and sheet["answers"].get(n) != first["answers"][n]]
        varied += [f"{m} layers" for m in first["models"]
                   if _structure(sheet["models"][m]) != _structure(first["models"][m])]
        if varied:
            raise GradingError(
                f"the reference solution's facts changed between seeds: {', '.join(varied)}",
                hint="expected values must not depend on the seed; fix the source notebook",
            )


def _refuse_inconsistent_reference(sheets: list[dict[str, Any]],
                                   training: dict[str, Any] | None) -> None:
    """The reference must pass the evidence checks it defines: a model with a nested backbone
    (measured only where the assignment uses one) agrees with the trusted tail, and each
    step-counted model took exactly the configured optimizer steps."""
    for model in sheets[0]["models"]:
        diffs = [s["models"].get(model, {}).get("tail_max_diff") for s in sheets]
        if any(d is not None and d > FT_AGREEMENT_TOLERANCE for d in diffs):
            raise GradingError(
                f"the reference {model} disagrees with its own last block and head on the "
                f"trusted activations (largest difference "
                f"{max(d for d in diffs if d is not None):.2e})",
                hint=f"{model} must apply preprocess_input and share its layers with the tail")
    if training is None:
        return
    for model, name in training["counted"].items():
        expected = training["epochs"][name] * steps_per_epoch(training)
        got = [s["models"].get(model, {}).get("optimizer_iterations") for s in sheets]
        if any(g != expected for g in got):
            raise GradingError(
                f"the reference {model} took {got} optimizer steps, not {expected} "
                f"({training['epochs'][name]} epochs x ceil({training['n_train']} / "
                f"{training['batch_size']}))",
                hint=f"the source notebook must fit {model} once, on the train split only")


def _structure(model_facts: dict[str, Any]) -> Any:
    return ([(r["type"], r["output_shape"], r["params"], r["trainable"]) for r in model_facts["layers"]],
            model_facts["counts"])
