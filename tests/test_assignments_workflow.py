"""The instructors' guide, command by command: release and collect through nbgrader's exchange
and from an LMS download (zip collect), autograde, feedback back to the learner, CSV export."""

from __future__ import annotations

import csv
import getpass
import shutil
import subprocess
import sys
import zipfile

import nbformat
import pytest
from course import Course, fill, solution_answers

pytestmark = pytest.mark.slow

ASSIGNMENT = "lstm"
COURSE_ID = "rnn-course"
# The LMS names each download <student>_<notebook>; the guide gives this expression.
LMS_REGEXP = r".*/(?P<student_id>[^/_]+)_(?P<file_id>[^/]+\.ipynb)$"


def test_exchange_and_lms_round_trip(tmp_path):
    course = Course.create(tmp_path / "course")
    exchange = tmp_path / "exchange"
    exchange.mkdir(mode=0o777)
    at_exchange = f"--Exchange.root={exchange}"
    course.nbgrader("generate_assignment", ASSIGNMENT)
    course.nbgrader("release_assignment", ASSIGNMENT, at_exchange)

    # A learner fetches, completes and submits through the exchange (identified by login).
    home = tmp_path / "learner"
    home.mkdir()

    def learner(*args):
        command = [sys.executable, "-m", "nbgrader", *args, f"--course={COURSE_ID}", at_exchange]
        done = subprocess.run(command, cwd=home, env=course.env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    learner("fetch_assignment", ASSIGNMENT)
    fetched = home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert [p.name for p in (home / ASSIGNMENT).iterdir()] == [fetched.name]  # one file
    nbformat.write(fill(nbformat.read(fetched, 4), solution_answers(ASSIGNMENT)), fetched)
    learner("submit", ASSIGNMENT)
    course.nbgrader("collect", ASSIGNMENT, at_exchange)

    # Two more learners handed in through an LMS: one file as is, one zipped.
    archive = course.path / "downloaded" / ASSIGNMENT / "archive"
    archive.mkdir(parents=True)
    shutil.copy(
        course.path / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", archive / "bob_lstm.ipynb"
    )
    with zipfile.ZipFile(archive / "carol.zip", "w") as z:
        z.write(archive / "bob_lstm.ipynb", "carol_lstm.ipynb")
    course.nbgrader(
        "zip_collect", ASSIGNMENT, f"--FileNameCollectorPlugin.named_regexp={LMS_REGEXP}"
    )
    me = getpass.getuser()
    assert sorted(p.name for p in (course.path / "submitted").iterdir()) == sorted(
        ["bob", "carol", me]
    )

    course.nbgrader("autograde", ASSIGNMENT)
    course.nbgrader("generate_feedback", ASSIGNMENT)
    course.nbgrader("release_feedback", ASSIGNMENT, f"--student={me}", at_exchange)
    learner("fetch_feedback", ASSIGNMENT)
    assert list((home / ASSIGNMENT / "feedback").rglob(f"{ASSIGNMENT}.html"))
    for student in ("bob", "carol"):
        assert course.feedback(student, ASSIGNMENT).is_file()

    course.nbgrader("export", "--to", "grades.csv")
    with open(course.path / "grades.csv", newline="", encoding="utf-8") as f:
        scores = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    assert scores == {me: 21.0, "bob": 0.0, "carol": 0.0}
