"""Late work and extensions: the course's policy (``gradecheck.late_work``, set in
``nbgrader_config.py``) gives the same penalty under plain ``nbgrader autograde`` and under
``classgrade``; a submission without a valid time is never graded as on time."""

from __future__ import annotations

import datetime as dt

import pytest
from course import Course, correct, grade_points
from nbgrader.api import Gradebook, MissingEntry
from traitlets.config import Config

from gradecheck.late_work import LatePenalty, penalty_for

A = "rnn"
DUE = dt.datetime(2026, 1, 10, 12, 0, 0)
HOUR = dt.timedelta(hours=1)
# Learner -> when they handed in (None: no timestamp.txt; a str: written as it is).
HANDED_IN = {
    "ontime": DUE - HOUR,
    "late": DUE + 30 * HOUR,  # 2 days (or part of one) late
    "extended": DUE + 30 * HOUR,  # inside a 48 h extension
    "pastext": DUE + 60 * HOUR,  # 12 h past a 48 h extension: 1 day
    "badstamp": "the tenth of January, noon",
    "nostamp": None,
}
EXTENSIONS = {A: {"extended": 48.0, "pastext": 48.0}}


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def test_penalty_per_started_day_then_zero():
    assert penalty_for(10.0, 0, 10, 7) == 0
    assert penalty_for(10.0, 1, 10, 7) == 1.0  # one second: a started day
    assert penalty_for(10.0, 86400, 10, 7) == 1.0
    assert penalty_for(10.0, 86401, 10, 7) == 2.0
    assert penalty_for(10.0, 7 * 86400, 10, 7) == 7.0
    assert penalty_for(10.0, 7 * 86400 + 1, 10, 7) == 10.0  # past the last day: everything
    assert penalty_for(0.0, 5 * 86400, 10, 7) == 0


def test_an_extension_moves_the_deadline_for_that_learner_only():
    config = Config()
    config.LatePenalty.extensions = EXTENSIONS
    plugin = LatePenalty(config=config)
    assert plugin.seconds_late(A, "extended", 30 * 3600) == 0
    assert plugin.seconds_late(A, "pastext", 60 * 3600) == 12 * 3600
    assert plugin.seconds_late(A, "late", 30 * 3600) == 30 * 3600
    assert plugin.seconds_late("lstm", "extended", 30 * 3600) == 30 * 3600


def _course(path, extensions=EXTENSIONS) -> Course:
    course = Course.create(path, assignments=(A,), release=True)
    with open(course.path / "nbgrader_config.py", "a", encoding="utf-8") as f:
        f.write(f"\nc.LatePenalty.extensions = {extensions!r}\n")
    course.nbgrader("db", "assignment", "add", A, f"--duedate={_stamp(DUE)}")
    notebook = correct(course, A)
    for student, when in HANDED_IN.items():
        course.submit(student, A, notebook)
        stamp = course.folder(student, A) / "timestamp.txt"
        if when is None:
            stamp.unlink()
        else:
            stamp.write_text(when if isinstance(when, str) else _stamp(when))
    return course


def _penalties(course: Course) -> dict[str, float | None]:
    """Learner -> late penalty, or None where no submission is recorded."""
    found: dict[str, float | None] = {}
    with Gradebook(f"sqlite:///{course.path / 'gradebook.db'}") as gb:
        for student in HANDED_IN:
            try:
                found[student] = float(gb.find_submission(A, student).late_submission_penalty)
            except MissingEntry:
                found[student] = None
    return found


@pytest.mark.slow
def test_nbgrader_and_classgrade_apply_the_same_policy(tmp_path):
    full = sum(grade_points(A).values())
    expected = {
        "ontime": 0.0,
        "late": 0.2 * full,
        "extended": 0.0,
        "pastext": 0.1 * full,
        "badstamp": None,
        "nostamp": None,
    }

    by_nbgrader = _course(tmp_path / "nbgrader")
    done = by_nbgrader.nbgrader("autograde", A, check=False)
    assert done.returncode != 0  # two submissions were not graded, and it says so
    log = done.stdout + done.stderr
    assert "timestamp.txt is not a date ('the tenth of January, noon')" in log  # badstamp
    assert "no valid submission time" in log  # the course's (nostamp)
    assert _penalties(by_nbgrader) == pytest.approx(expected)
    for student in ("badstamp", "nostamp"):
        assert not by_nbgrader.autograded(student, A).exists()

    by_classgrade = _course(tmp_path / "classgrade")
    done = by_classgrade.classgrade("grade", A, "--quiet")
    assert done.returncode == 1, done.stdout + done.stderr
    assert _penalties(by_classgrade) == pytest.approx(expected)
    journal = by_classgrade.journal()
    for student in ("badstamp", "nostamp"):
        entry = journal[f"{A}/{student}"]
        assert entry["status"] == "failed"
        # The late-work policy's own reason, as it is: not a failure to record the grades.
        assert entry["reason"].startswith("no valid submission time ("), entry
        assert "could not be recorded" not in entry["reason"], entry

    # The export shows the penalty and leaves the ungraded ones empty.
    done = by_classgrade.classgrade("export", "--format", "moodle", "--identifier", "idnumber")
    assert done.returncode == 0, done.stderr
    rows = dict(line.split(",") for line in done.stdout.splitlines()[1:])
    assert rows["late"] == f"{full - 0.2 * full:g}"
    assert rows["extended"] == f"{full:g}"
    assert rows["badstamp"] == rows["nostamp"] == ""
    assert f"{A} late: late by 30.0 h: {full:g} - " in done.stderr
    assert f"{A} pastext: late by 12.0 h after a 48 h extension" in done.stderr
    assert f"{A} nostamp: left empty (" in done.stderr

    # A later due date regrades (a penalty depends on it): nobody is late any more.
    later = _stamp(DUE + 100 * HOUR)
    by_classgrade.nbgrader("db", "assignment", "add", A, f"--duedate={later}")
    done = by_classgrade.classgrade("grade", A, "--quiet")
    assert done.returncode == 1, done.stdout + done.stderr  # the two without a time, again
    assert _penalties(by_classgrade) == pytest.approx({**expected, "late": 0.0, "pastext": 0.0})
