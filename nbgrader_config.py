"""nbgrader's settings, derived from course_config.py (thin on purpose: no logic of its own).

nbgrader reads this file from the working directory. Everything that has a value
in course_config.py comes from there; the rest are nbgrader's release-time
markers, written out so that a change of nbgrader default cannot change a release.
The exchange and the hub's settings are set by the hosting side, not here.
"""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from course_config import COURSE  # noqa: E402

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.root = str(_ROOT)
c.CourseDirectory.course_id = COURSE.course_id
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"

c.ClearSolutions.begin_solution_delimeter = "BEGIN SOLUTION"  # nbgrader's own spelling
c.ClearSolutions.end_solution_delimeter = "END SOLUTION"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"
c.ClearHiddenTests.enforce_metadata = True
# Student-facing cells run TensorFlow training: the grading side enforces its own limits.
c.ExecutePreprocessor.timeout = int(COURSE.limits.cell_timeout_s)
