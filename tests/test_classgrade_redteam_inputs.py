"""Red team, stale grades: a change of what decides a grade regrades, without --force.

The "unchanged since the last run" fingerprint must cover the hidden tests (the source notebook
and the gradebook made from it) and the course's ``gradecheck`` copy, not only the submission.
Each case has a small course of its own: a graded run, an unchanged run, a change, a run.
"""

from __future__ import annotations

import nbformat
import pytest
from course import Course, correct, fill, solution_answers

pytestmark = pytest.mark.slow

A = "rnn"
WRONG_STEP = """def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    return np.tanh(x_t @ W_xh)  # ignores the state: wrong
"""


@pytest.fixture
def course(tmp_path_factory):
    course = Course.create(tmp_path_factory.mktemp("inputs") / "course", (A,), release=True)
    course.submit("ann", A, correct(course, A))
    answers = solution_answers(A)
    answers["rnn_step_answer"] = WRONG_STEP
    course.submit("ben", A, fill(course.release(A), answers))
    first = _grade(course)
    assert "Graded 2, failed 0" in first.stdout, first.stdout + first.stderr[-2000:]
    assert _scores(course) == {"ann": (7, 7), "ben": (3, 7)}
    again = _grade(course)
    assert "Graded 0, failed 0, unchanged since the last run 2" in again.stdout, again.stdout
    return course


def _grade(course):
    return course.classgrade("grade", "--quiet", "--workers", "2")


def _scores(course) -> dict[str, tuple[float, float]]:
    return {
        key.split("/", 1)[1]: (entry["score"], entry["max_score"])
        for key, entry in course.journal().items()
    }


def _edit_source_cell(course, grade_id: str, edit) -> None:
    path = course.path / "solutions" / A / f"{A}.ipynb"
    nb = nbformat.read(path, 4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    edit(cell)
    nbformat.write(nb, path)


def test_changed_points_and_a_stricter_hidden_test_regrade(course):
    def more_points(cell):
        cell.metadata.nbgrader["points"] = 5

    def stricter(cell):
        cell.source = cell.source.replace(
            "### END HIDDEN TESTS",
            'assert False, "a stricter hidden test"\n### END HIDDEN TESTS',
            1,
        )

    _edit_source_cell(course, "rnn_sequence", more_points)
    _edit_source_cell(course, "rnn_step_bias", stricter)
    course.nbgrader("generate_assignment", A, "--force")
    run = _grade(course)
    assert "Graded 2, failed 0, unchanged since the last run 0" in run.stdout, run.stdout
    # rnn_step_no_bias 2 + rnn_step_bias now 0 + rnn_sequence now 5 (of 9).
    assert _scores(course) == {"ann": (7, 9), "ben": (5, 9)}


def test_changed_points_alone_regrade(course):
    def fewer_points(cell):
        cell.metadata.nbgrader["points"] = 1

    _edit_source_cell(course, "rnn_step_no_bias", fewer_points)
    course.nbgrader("generate_assignment", A, "--force")
    run = _grade(course)
    assert "Graded 2, failed 0, unchanged since the last run 0" in run.stdout, run.stdout
    assert _scores(course) == {"ann": (6, 6), "ben": (3, 6)}


def test_a_stricter_gradecheck_copy_alone_regrades(course):
    # Only the course's copy of the hidden tests' package changes: the notebooks, the source
    # and the gradebook stay as they were.
    module = course.path / "gradecheck" / "rnn.py"
    module.write_text(
        module.read_text()
        + "\n\ndef simple_rnn_sequence(func, namespace=None, name='simple_rnn_sequence'):\n"
        "    raise AssertionError('a stricter check')\n"
    )
    run = _grade(course)
    assert "Graded 2, failed 0, unchanged since the last run 0" in run.stdout, run.stdout
    assert _scores(course) == {"ann": (4, 7), "ben": (0, 7)}
