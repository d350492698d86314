"""Grade fabricated submissions with the real nbgrader and check every score and message.

One temporary course holds every submission of every assignment; one ``nbgrader autograde``
call grades them all (a batch: one process, kernels started per notebook), then
``generate_feedback`` and ``export`` run as the instructors' guide says.
"""

from __future__ import annotations

import csv

import pytest
from assignment_submissions import GRADE_CELLS, submissions, submitted_notebook
from course import ASSIGNMENTS, ROOT, Course

pytestmark = pytest.mark.slow

SUBMISSIONS = submissions()
CASES = [(a, s) for a in ASSIGNMENTS for s in SUBMISSIONS[a]]

HIDDEN_ONLY = [
    "BEGIN HIDDEN TESTS",
    "END HIDDEN TESTS",
    "gradecheck",
    "grade.lstm_step",
    "use_correct_earlier_functions",
    "Traceback (most recent call last)",
]
"""Strings of the hidden tests, the checking package and full tracebacks."""

REFERENCE_ONLY = [
    "rnn_ref",
    "check_gate_weights",
    "def forget_gate(x_t, h_prev, W_xf, W_hf, b_f=None, activation",
    "convert_gate_params",
]
"""Strings that appear only in the reference package's source."""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The course after generate_assignment, autograde, generate_feedback and export."""
    course = Course.create(tmp_path_factory.mktemp("grading") / "course", release=True)
    for assignment in ASSIGNMENTS:
        release = course.release(assignment)
        for student, submission in SUBMISSIONS[assignment].items():
            course.submit(student, assignment, submitted_notebook(release, submission))
    course.nbgrader("autograde", "*")
    course.nbgrader("generate_feedback", "*")
    course.nbgrader("export", "--to", str(course.path / "grades.csv"))
    return course


def test_grade_cells_and_points_are_as_documented(graded):
    for assignment in ASSIGNMENTS:
        assert graded.max_scores(assignment) == GRADE_CELLS[assignment]


@pytest.mark.parametrize(("assignment", "student"), CASES)
def test_scores_and_messages(graded, assignment, student):
    expected_failures = SUBMISSIONS[assignment][student].expected_failures
    scores = graded.scores(student, assignment)
    errors = graded.errors(student, assignment)
    expected = {
        cell: 0.0 if cell in expected_failures else points
        for cell, points in GRADE_CELLS[assignment].items()
    }
    assert scores == expected, f"errors: {errors}"
    for cell, phrase in expected_failures.items():
        assert phrase in errors.get(cell, ""), f"{cell}: {errors.get(cell)!r} lacks {phrase!r}"
    assert set(errors) == set(expected_failures)


@pytest.mark.parametrize(("assignment", "student"), CASES)
def test_no_grade_cell_writes_to_stderr(graded, assignment, student):
    # nbgrader scores a grade cell with stderr output 0: warnings of correct answers (a naive
    # sigmoid overflowing, TensorFlow's logs) must not reach it.
    assert graded.stderr_outputs(student, assignment) == {}


@pytest.mark.parametrize(("assignment", "student"), CASES)
def test_feedback_shows_messages_but_no_hidden_code(graded, assignment, student):
    html = graded.feedback(student, assignment).read_text(encoding="utf-8")
    for phrase in SUBMISSIONS[assignment][student].expected_failures.values():
        assert phrase in html
    for secret in HIDDEN_ONLY + REFERENCE_ONLY:
        assert secret not in html, f"feedback of {student}/{assignment} shows {secret!r}"


def test_feedback_excludes_checking_package_files(graded):
    shipped = {p.name for p in (graded.path / "feedback").rglob("*") if p.is_file()}
    assert not {p.name for p in (ROOT / "gradecheck").glob("*.py")} & shipped
    assert not any(name.endswith(".py") for name in shipped)


def test_exported_csv_has_the_expected_scores(graded):
    with open(graded.path / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(f)}
    for assignment, student in CASES:
        failures = SUBMISSIONS[assignment][student].expected_failures
        points = GRADE_CELLS[assignment]
        expected = sum(p for cell, p in points.items() if cell not in failures)
        row = rows[(assignment, student)]
        assert float(row["score"]) == expected, (assignment, student)
        assert float(row["max_score"]) == sum(points.values())
