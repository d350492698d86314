"""The run's hold on nbgrader's gradebook: one connection lent, the preprocessors' writes whole."""

from __future__ import annotations

import contextlib
import sqlite3

import nbgrader.preprocessors.latesubmissions as late_module
import nbgrader.preprocessors.saveautogrades as save_module
from nbgrader.api import Gradebook

from classgrade.gradebook import lend_gradebook


def first_name(path, student: str):
    with contextlib.closing(sqlite3.connect(path)) as other:  # as formgrader would read
        query = "SELECT first_name FROM student WHERE id = ?"
        return other.execute(query, (student,)).fetchone()[0]


@contextlib.contextmanager
def named_by_a_preprocessor(module, path, student: str, name: str):
    """In a run's lent gradebook, a preprocessor of ``module`` names ``student`` and commits.

    Yields ``(the run's gradebook, the preprocessor's)``, the run's gradebook still lent.
    """
    url = f"sqlite:///{path}"
    with Gradebook(url) as gb:
        gb.add_student(student)
        with lend_gradebook(gb):
            with module.Gradebook(url) as lent:  # what the preprocessor opens
                lent.find_student(student).first_name = name
                lent.db.commit()
            yield gb, lent


def test_a_preprocessors_commit_waits_for_the_runs_own(tmp_path):
    path = tmp_path / "gradebook.db"
    with named_by_a_preprocessor(save_module, path, "ann", "Ann") as (gb, lent):
        assert lent.db is not gb.db
        assert first_name(path, "ann") is None  # flushed in the run's transaction only
        gb.db.commit()
        assert first_name(path, "ann") == "Ann"


def test_a_rollback_drops_every_write_of_the_submission(tmp_path):
    path = tmp_path / "gradebook.db"
    with named_by_a_preprocessor(late_module, path, "bob", "Bob") as (gb, _lent):
        gb.db.rollback()  # what the run does when recording a submission fails
        assert first_name(path, "bob") is None
        assert gb.find_student("bob").first_name is None


def test_lending_ends_with_the_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(url) as gb, lend_gradebook(gb):
        assert save_module.Gradebook is not Gradebook
    assert save_module.Gradebook is Gradebook
    assert late_module.Gradebook is Gradebook
