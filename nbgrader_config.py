"""nbgrader configuration of the course (run nbgrader from the repository root).

Source notebooks (solutions and hidden tests) live in ``solutions/<assignment>/``; the student
versions nbgrader generates from them go to ``exercises/<assignment>/`` and are committed. The
hidden tests call the instructor-only package ``gradecheck`` (at the repository root, outside
``solutions/``, so nbgrader never copies it to learners or into feedback).
"""

import os
import sys

c = get_config()  # noqa: F821 (injected by nbgrader's config loader)

COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))
# gradecheck.feedback below, when the package is not installed in the environment.
if COURSE_ROOT not in sys.path:
    sys.path.append(COURSE_ROOT)

from gradecheck.feedback import MinimalTracebacks  # noqa: E402
from gradecheck.late_work import LatePenalty, say_which_timestamp_is_not_a_date  # noqa: E402

c.CourseDirectory.course_id = "rnn-course"
c.CourseDirectory.root = COURSE_ROOT
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.db_url = f"sqlite:///{os.path.join(COURSE_ROOT, 'gradebook.db')}"
# Keep checkpoints and caches out of the student release and of the copies made for grading.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    ".DS_Store",
]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearSolutions.begin_solution_delimeter = "BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "END SOLUTION"
c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"

# Grade with the environment's own Python kernel, whatever kernelspec a submission names.
c.Execute.kernel_name = "python3"
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True

# Feedback shows each cell's outcome and the message of every failed check, never the hidden
# tests: ClearHiddenTests removes them from the cell sources and MinimalTracebacks from the
# tracebacks (which would otherwise quote the hidden test lines and gradecheck's source).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    MinimalTracebacks,
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# Late work, applied alike by `nbgrader autograde` and `python -m classgrade grade` (both run
# nbgrader's AssignLatePenalties): due dates are the gradebook's (`nbgrader db assignment add
# <assignment> --duedate=...`); each day or part of a day late takes 10 % of a notebook's score,
# more than 7 days late all of it; a submission without a valid timestamp.txt is not graded when
# its assignment has a due date. Extensions, in hours: {assignment: {student id: hours}}.
c.AssignLatePenalties.plugin_class = LatePenalty
c.LatePenalty.percent_per_day = 10.0
c.LatePenalty.zero_after_days = 7.0
c.LatePenalty.extensions = {}
c.Autograde.pre_convert_hook = say_which_timestamp_is_not_a_date
