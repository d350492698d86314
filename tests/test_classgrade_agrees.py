"""classgrade and plain nbgrader give the same scores and name the same mistakes.

Every fabricated submission of every assignment (``assignment_submissions``: correct answers
written in other ways, typical mistakes, cells moved above the answers they need, noisy and
in-place answers) is graded in one classgrade run, sandbox on. Each grade cell must score what
``test_assignments_grading`` asserts of plain ``nbgrader autograde``, and each failed cell's
message must name the same mistake.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from assignment_submissions import GRADE_CELLS, submissions, submitted_notebook
from course import ASSIGNMENTS, Course

pytestmark = pytest.mark.slow

SUBMISSIONS = submissions()
CASES = [(a, s) for a in ASSIGNMENTS for s in SUBMISSIONS[a]]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = Course.create(tmp_path_factory.mktemp("agree") / "course", release=True)
    for assignment in ASSIGNMENTS:
        release = course.release(assignment)
        for student, submission in SUBMISSIONS[assignment].items():
            course.submit(student, assignment, submitted_notebook(release, submission))
    run = course.classgrade("grade", "--quiet", "--workers", "2")
    assert "Graded" in run.stdout, run.stderr[-3000:]
    return course


def _errors(course, student, assignment) -> dict[str, str]:
    path = course.autograded(student, assignment)
    out = {}
    for cell in nbformat.read(path, 4).cells:
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                out[cell.metadata.get("nbgrader", {}).get("grade_id")] = f"{o.ename}: {o.evalue}"
    return out


@pytest.mark.parametrize(("assignment", "student"), CASES)
def test_scores_and_messages_match_plain_nbgrader(graded, assignment, student):
    entry = graded.journal()[f"{assignment}/{student}"]
    assert entry["status"] == "graded", entry
    expected_failures = SUBMISSIONS[assignment][student].expected_failures
    expected = {
        cell: 0.0 if cell in expected_failures else points
        for cell, points in GRADE_CELLS[assignment].items()
    }
    errors = _errors(graded, student, assignment)
    assert graded.scores(student, assignment) == expected, json.dumps(errors, ensure_ascii=False)
    for cell, phrase in expected_failures.items():
        assert phrase in errors.get(cell, ""), f"{cell}: {errors.get(cell)!r} lacks {phrase!r}"
    # The learner reads the learner's own mistake, never the grader's machinery.
    for message in errors.values():
        for internal in ("LearnerError", "KernelChannel", "classgrade", "_probe", "FromGrader"):
            assert internal not in message, message
