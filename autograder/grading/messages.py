"""Every sentence a student reads about their grade, as module-level templates.

Tests assert these texts, so a message is part of the contract. No template may
carry a hidden check's code, its output, or a path on the grading machine.
"""

# ---------------------------------------------------------------------------
# Checking and scoring (check.py, score.py, evidence.py)

MODEL_LOAD_FAILED = (
    "{name} could not be loaded safely ({error}). Build it from standard Keras layers only: "
    "custom Python code such as Lambda layers cannot be checked."
)
NOT_DEFINED = (
    "{name} was not defined when the notebook finished. Make sure a cell assigns it and "
    "runs without an error."
)
NOT_EXPORTABLE = "{name} could not be read by the grader: {detail}"
STOPPED_IN_DEFINING_CELL = (
    "{name} was not available because cell {cell} {what}."
)
STOPPED_BEFORE = (
    "{name} was not available because the notebook stopped at cell {cell}, which {what}, "
    "before the cell that defines it ran."
)
CHECK_CRASHED = (
    "This item could not be checked ({error}). Your other items are unaffected; "
    "ask course staff if this persists."
)
CHECK_DID_NOT_RUN = (
    "This item could not be checked because the checker stopped early. "
    "Course staff have been told; your other items are unaffected."
)
PASSED = "Correct."
STAND_IN_LABEL = (
    "Stand-in weights: ResNet50 ran with untrained (stand-in) weights, not ImageNet, "
    "so transfer-learning accuracies here are not ImageNet results."
)
SUBMISSION_UNREADABLE = (
    "Your submission could not be graded: {reason} Nothing else was changed; fix the file "
    "and submit again."
)

# What a cell limit means, completing "cell N ..." above.
LIMIT_WHAT = {
    "cell_timeout_s": "ran longer than the {value:g} s limit per cell and was interrupted",
    "notebook_budget_s": "was running when the {value:g} s budget for the whole notebook ran out",
    "memory_mb": "used more than the {value:g} MB memory limit and the kernel was stopped",
    "max_processes": "started more than the {value:g} processes/threads allowed",
    "output_bytes": "printed more than {value:g} bytes of output, which was cut",
    "disk_mb": "wrote more than the {value:g} MB of disk space allowed",
    "kernel_died": "made the Python kernel die",
}
STATUS_WHAT = {
    "error": "raised an error ({message})",
    "timeout": "ran out of time",
    "killed": "was stopped",
    "not-run": "did not run",
}
