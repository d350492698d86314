"""Grade on submit, end to end through a real exchange folder: learners hand in with
``nbgrader submit``, ``python -m classgrade watch`` grades and releases feedback, learners read
it with ``nbgrader fetch_feedback``; the rate limit holds, the latest submission is the one
graded, a broken and a hostile submission get a clear answer without holding up the others,
and SIGTERM ends the watcher with nothing left running."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from course import SUBREAPER_RUN, Course, correct, grade_points, partial, tool_env
from nbgrader.api import Gradebook

from classgrade.runner import Settings
from classgrade.watch import Watcher

A = "rnn"
COURSE_ID = "rnn-course"
MIN_INTERVAL = 60  # seconds between two graded attempts of one learner
DEADLINE = 600  # for any one thing the test waits for
# An answer cell that ignores the interrupt and never ends: the notebook fails at its limit.
STALLS = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"


class Learner:
    """A learner with a home of their own, using nbgrader's exchange commands."""

    def __init__(self, course: Course, exchange: Path, name: str, root: Path):
        self.course, self.exchange, self.name = course, exchange, name
        self.home = root / name
        (self.home / A).mkdir(parents=True)

    def nbgrader(self, *args: str) -> None:
        data = str(self.home / "jupyter-data")  # nbgrader's cache of submissions
        env = {**self.course.env(), "HOME": str(self.home), "JUPYTER_DATA_DIR": data}
        done = subprocess.run(
            [
                *(sys.executable, "-m", "nbgrader", *args, f"--course={COURSE_ID}"),
                *(f"--Exchange.root={self.exchange}", f"--student={self.name}"),
            ],
            cwd=self.home,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def submit(self, notebook) -> str:
        """Hand ``notebook`` (or text) in; the time nbgrader recorded for the submission."""
        path = self.home / A / f"{A}.ipynb"
        if isinstance(notebook, str):
            path.write_text(notebook)
        else:
            nbformat.write(notebook, path)
        before = set(self._cached())
        self.nbgrader("submit", A)
        (new,) = set(self._cached()) - before
        return (new / "timestamp.txt").read_text().strip()

    def _cached(self) -> list[Path]:
        cache = self.home / "jupyter-data" / "nbgrader_cache" / COURSE_ID
        return list(cache.glob(f"{self.name}+{A}+*")) if cache.is_dir() else []

    def feedback(self) -> dict[str, str]:
        """Fetch feedback: submission time folder -> the page's text."""
        self.nbgrader("fetch_feedback", A)
        found = {}
        for page in (self.home / A / "feedback").glob(f"*/{A}.html"):
            found[page.parent.name] = page.read_text(encoding="utf-8")
        return found


def _wait_for(path: Path, pattern: str, what: str) -> str:
    """The first line of the file at ``path`` matching ``pattern``, waiting for it."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        for line in text.splitlines():
            if re.search(pattern, line):
                return line
        time.sleep(0.5)
    raise AssertionError(f"no {what} within {DEADLINE} s; the watcher said:\n{text}")


def _answered(course: Course, student: str) -> list[dict]:
    state = json.loads((course.path / ".classgrade" / "watch.json").read_text())
    return state[f"{A}/{student}"]["answered"]


@pytest.mark.slow
def test_watch_grades_on_submit(tmp_path):
    course = Course.create(tmp_path / "course", assignments=(A,), release=True)
    exchange = tmp_path / "exchange"
    exchange.mkdir(mode=0o777)
    with open(course.path / "nbgrader_config.py", "a", encoding="utf-8") as f:
        f.write(f"\nc.Exchange.root = {str(exchange)!r}\n")
    course.nbgrader("release_assignment", A)

    # Four learners hand in before the watcher starts: its first look finds them all, and
    # grades them in one run, where the stalling one must hold up no one else's answer.
    learners = {
        name: Learner(course, exchange, name, tmp_path / "homes")
        for name in ("mallory", "alice", "bob", "eve")
    }
    stamps = {
        "mallory": learners["mallory"].submit(_stalling(course)),
        "alice": learners["alice"].submit(correct(course, A)),
        "bob": learners["bob"].submit(partial(course, A, keep=1)),
        "eve": learners["eve"].submit('{"cells": [ not a notebook'),
    }
    out, err = tmp_path / "watch.out", tmp_path / "watch.err"
    watch = [sys.executable, "-m", "classgrade", "watch", A, "--course-dir", str(course.path)]
    watch += ["--min-interval", str(MIN_INTERVAL), "--poll", "1", "--workers", "2"]
    watch += ["--cell-seconds", "30", "--notebook-seconds", "90"]
    started = time.monotonic()
    launcher = subprocess.Popen(
        [sys.executable, str(SUBREAPER_RUN), "--grace", "30", str(out), str(err), "--", *watch],
        cwd=course.path,
        env=tool_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pattern = {n: rf"^{A} {n} \(submitted {re.escape(t)}\)" for n, t in stamps.items()}
        lines = {"alice": _wait_for(err, pattern["alice"], "alice's answer")}
        # Answered while the stalling notebook of the same run is still being graded.
        assert course.journal()[f"{A}/mallory"]["status"] == "pending"
        for name in ("bob", "eve", "mallory"):
            lines[name] = _wait_for(err, pattern[name], f"{name}'s answer")
        all_answered_seconds = time.monotonic() - started
        for name in stamps:
            assert "feedback released" in lines[name], lines[name]
        full = f"{sum(grade_points(A).values()):g}"
        assert f"{full}/{full}" in lines["alice"]
        assert "failed" not in lines["bob"]
        assert "failed: rnn.ipynb is not valid JSON" in lines["eve"]
        assert "ignored the interrupt" in lines["mallory"]

        pages = {name: learners[name].feedback() for name in stamps}
        for name, stamp in stamps.items():
            (page,) = pages[name].values()
            assert f"Feedback on your submission of {stamp}." in page
        assert "could not be graded" in pages["eve"][next(iter(pages["eve"]))]
        assert "not valid JSON" in next(iter(pages["eve"].values()))
        assert "ignored the interrupt" in next(iter(pages["mallory"].values()))

        # The rate limit: a second submission is answered at once or when the window after
        # the first answer ends; two more handed in right after that answer are both inside the
        # next window, and only the later one is graded, once it ends.
        second = learners["alice"].submit(partial(course, A, keep=1))
        _wait_for(err, rf"^{A} alice \(submitted {re.escape(second)}\)", "the second")
        third = learners["alice"].submit(partial(course, A, keep=2))
        fourth = learners["alice"].submit(correct(course, A))
        _wait_for(err, rf"^{A} alice \(submitted {re.escape(fourth)}\)", "the fourth")
        answered = _answered(course, "alice")
        assert [a["submitted"] for a in answered] == [stamps["alice"], second, fourth]
        for before, after in itertools.pairwise(answered):
            assert after["graded_at"] - before["graded_at"] >= MIN_INTERVAL
        assert third not in err.read_text()
        assert len(learners["alice"].feedback()) == 3  # all but the third
        print(f"\nall four answered {all_answered_seconds:.0f} s after the watcher started")

        watcher = psutil.Process(launcher.pid).children()[0]
        os.kill(watcher.pid, signal.SIGTERM)
        report = json.loads(launcher.communicate(timeout=DEADLINE)[0].strip().splitlines()[-1])
    finally:
        if launcher.poll() is None:
            for child in psutil.Process(launcher.pid).children(recursive=True):
                child.kill()
            launcher.kill()
        if launcher.stdout is not None and not launcher.stdout.closed:
            launcher.communicate(timeout=60)  # closes its pipe, whichever way it ended
    assert report["returncode"] == 0, err.read_text()
    assert err.read_text().rstrip().endswith("stopped")
    assert report["alive"] == []


def _stalling(course: Course) -> nbformat.NotebookNode:
    """The correct notebook with its first answer cell never ending."""
    nb = correct(course, A)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = STALLS
            break
    return nb


def test_the_window_holds_a_later_submission_and_only_the_latest_is_due(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    db = course / "gradebook.db"
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'demo'\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{db.as_posix()}'\n"
    )
    with Gradebook(f"sqlite:///{db.as_posix()}", "demo") as gb:
        gb.add_assignment(A)
    stamp = course / "submitted" / "alice" / A / "timestamp.txt"
    stamp.parent.mkdir(parents=True)
    (course / "submitted" / "linked").symlink_to(stamp.parent.parent)  # never followed
    watcher = Watcher(Settings(course_dir=course), min_interval=600)

    stamp.write_text("2026-01-01 10:00:00 UTC")
    assert watcher.due(A, now=1000.0) == {"alice": "2026-01-01 10:00:00 UTC"}
    watcher.state[f"{A}/alice"] = {"submitted": "2026-01-01 10:00:00 UTC", "graded_at": 1000.0}
    assert watcher.due(A, now=1001.0) == {}  # answered
    stamp.write_text("2026-01-01 10:01:00 UTC")
    assert watcher.due(A, now=1300.0) == {}  # inside the window: it waits
    stamp.write_text("2026-01-01 10:02:00 UTC")
    assert watcher.due(A, now=1599.0) == {}
    assert watcher.due(A, now=1600.0) == {"alice": "2026-01-01 10:02:00 UTC"}  # the latest
