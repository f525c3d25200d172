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
PLACEHOLDER_LEFT = (
    "{name} was not defined: cell {cell} still raises NotImplementedError, the placeholder the "
    "assignment came with. Replace that line with your code that sets {name}."
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
REPLAYED = (
    "The kernel stopped at cell {cell}. To give credit for the work before it, the grader ran "
    "cells 1–{last} again in a fresh kernel and graded what they defined."
)
PASSED = "Correct."
NOT_ASSESSABLE = (
    "Not assessed in this grading mode, so it is left out of your maximum score: {why}"
)
STAND_IN_LABEL = (
    "Stand-in weights: ResNet50 ran with untrained (stand-in) weights, not ImageNet, "
    "so transfer-learning accuracies here are not ImageNet results."
)
STAND_IN_ITEM = (
    "(Stand-in weights: this item was judged on features of an untrained ResNet50, so it shows "
    "that your model is built and trained as asked, not how it would do on ImageNet features.)"
)
# On an item whose result depends on the profile (rubric marker profile_dependent), when
# grading ran at a smaller profile than the course's full one; numbers from course_config.py.
REDUCED_PROFILE = (
    "Graded at the {profile} profile ({size_px} px images, {epochs} epochs of training; the "
    "full assignment uses {full_size_px} px and {full_epochs} epochs)"
)
REDUCED_PROFILE_PASS_MARK = (
    REDUCED_PROFILE + ": the pass mark was calibrated for this profile, so passing shows that "
    "your model learns, not the accuracy it would reach at full size."
)
REDUCED_PROFILE_TRAINING = (
    REDUCED_PROFILE + ": training was checked against this profile's {epochs} epochs, so this "
    "shows that your notebook trains as its settings ask, not how a full-length run would go."
)
SUBMISSION_SYMLINK = (
    "{name} is a symbolic link, not a file: the grader only grades the notebook you submit "
    "itself"
)
SUBMISSION_BAD_NAME = (
    "the submission folder's name ({shown}) cannot name a student: it must be printable, "
    "not start with a dot, and be at most 255 bytes"
)
SUBMISSION_NO_NOTEBOOK = "the submission holds no {notebook}"
MODELS_NOT_CHECKED = (
    "the checker stopped while it loaded your exported models ({why}), so none of them could "
    "be checked; build them from the layers the notebook asks for, at the sizes it gives"
)
MODELS_STOPPED_MEMORY = "they needed more than the {detail} of memory a check may use"
MODELS_STOPPED_TIME = "checking them took longer than {detail}"
MODELS_STOPPED_CRASH = "it crashed: {detail}"
GRADER_ERROR = (
    "Your notebook ran, but the grader failed while checking it ({error}): this is a problem "
    "on our side, not in your work. Course staff have been told and will grade it again; "
    "you need not do anything."
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

# ---------------------------------------------------------------------------
# Execution and export (execute.py, export.py) — owned by the execute stage.
# Each completes "Cell N ..." or stands alone as a note; no grader path ever.

# The same sentence as LIMIT_WHAT's, said of "this cell" (one wording per limit).
CELL_TIMEOUT = ("This cell " + LIMIT_WHAT["cell_timeout_s"].replace("{value:g}", "{limit_s:g}")
                + "; grading went on with the next cell.")
CELL_TIMEOUT_KILLED = (
    "This cell ran longer than the {limit_s:g} s limit per cell and did not stop when "
    "interrupted (is KeyboardInterrupt caught or SIGINT ignored?), so the kernel was "
    "stopped. Later cells did not run."
)
CELL_BUDGET = (
    "The {limit_s:g} s budget for the whole notebook ran out while this cell was running. "
    "Later cells did not run."
)
CELL_NOT_RUN_AFTER = "Not run: the notebook stopped at cell {cell}."
CELL_OOM = (
    "The kernel used more than the {limit_mb:g} MB memory limit while running this cell "
    "and was stopped. Later cells did not run."
)
CELL_DIED = (
    "The Python kernel died while running this cell ({how}). Later cells did not run."
)
DIED_HOW_EXIT = "the process exited with code {code}, e.g. os._exit or sys.exit in a thread"
DIED_HOW_SIGNAL = "the process was killed by signal {signal}, e.g. a crash in native code"
DIED_HOW_UNKNOWN = "the process ended without a reason the grader could read"
CELL_PIDS = (
    "This cell tried to start more than the {limit:g} processes/threads allowed; "
    "the extra ones were refused."
)
CELL_DISK = "This cell wrote more than the disk space allowed ({limit_mb:g} MB in total)."
OUTPUT_CUT = (
    "Output of cell {cell} was cut at {limit:,} bytes (the limit per cell); "
    "the rest was not kept."
)
OUTPUT_DROPPED = (
    "A single output message of cell {cell} was larger than {limit:,} bytes and was "
    "dropped."
)
EXPORT_LOST = (
    "Your answers and models could not be collected because the kernel had stopped; "
    "only the cells before cell {cell} count as run, and names they defined were lost."
)
EXPORT_FAILED = "The grader could not collect your answers ({reason})."
EXPORT_REFUSED_FILE = "An exported file was refused ({what}); it was not graded."
EXPORT_FILE_REFUSED_DETAIL = (
    "the file it was exported in was refused ({what}), so it could not be graded"
)
EXPORT_TOO_BIG = "The exported files were larger than {limit_mb:g} MB together; {what} was left out."
ANSWER_TYPE = (
    "is a {type_name}; answers must be numbers, strings, True/False, None, "
    "or lists/tuples of those"
)
ANSWER_TOO_BIG = "is too large to export ({what})"
ANSWER_NOT_FINITE = "is not a finite number"
MODEL_NOT_KERAS = "is a {type_name}, not a Keras model"
MODEL_SAVE_FAILED = "could not be saved as .keras ({error})"
HISTORY_TYPE = "is a {type_name}, not a Keras History or a dict of lists of numbers"
UNSANDBOXED = (
    "This run was not sandboxed (grading.allow_unsandboxed is set); it is not valid for "
    "real students."
)

# The feedback page, next to an item the rubric marks with a Gradescope visibility: the
# hub's page has no due date and shows every result; this says when Gradescope shows it.
VISIBILITY_NOTE = {
    "hidden": "On Gradescope this result is hidden from students.",
    "after_due_date": "On Gradescope this result is shown after the due date.",
    "after_published": "On Gradescope this result is shown once grades are published.",
}

# The feedback page's closing section.
NEXT_ALL_PASSED = "Every assessed item passed: there is nothing to fix."
NEXT_ADVICE = (
    "Work through these in notebook order (a later item often needs a name an earlier one "
    "defines), run the check cell under each question in your notebook, then submit again.")
