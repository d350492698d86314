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
MIN_INTERVAL = 5  # seconds between two graded attempts of one learner
DEADLINE = 600  # for any one thing the test waits for
LONG = ("--cell-seconds", str(2 * DEADLINE), "--notebook-seconds", str(2 * DEADLINE))
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


class Watch:
    """``python -m classgrade watch`` under the subreaper, with its stderr in a file."""

    def __init__(self, course: Course, err: Path, *limits: str):
        self.err = err
        watch = [sys.executable, "-m", "classgrade", "watch", A, "--course-dir", str(course.path)]
        watch += ["--min-interval", str(MIN_INTERVAL), "--poll", "1", "--workers", "2", *limits]
        self.launcher = subprocess.Popen(
            [
                *(sys.executable, str(SUBREAPER_RUN), "--grace", "30"),
                *(str(err.with_suffix(".out")), str(err), "--", *watch),
            ],
            cwd=course.path,
            env=tool_env(),
            stdout=subprocess.PIPE,
            text=True,
        )

    def answer(self, name: str, stamp: str) -> str:
        """The watcher's line answering ``name``'s submission of ``stamp``, waiting for it."""
        return _wait_for(self.err, rf"^{A} {name} \(submitted {re.escape(stamp)}\)", name)

    def stop(self) -> None:
        """SIGTERM: it ends cleanly (exit code 0, "stopped") and leaves nothing running."""
        watcher = psutil.Process(self.launcher.pid).children()[0]
        os.kill(watcher.pid, signal.SIGTERM)
        out = self.launcher.communicate(timeout=DEADLINE)[0]
        report = json.loads(out.strip().splitlines()[-1])
        assert report["returncode"] == 0, self.err.read_text()
        assert self.err.read_text().rstrip().endswith("stopped")
        assert report["alive"] == []

    def kill(self) -> None:
        """Whatever is left (the test failed): killed, the pipe closed."""
        if self.launcher.poll() is None:
            for child in psutil.Process(self.launcher.pid).children(recursive=True):
                child.kill()
            self.launcher.kill()
        if self.launcher.stdout is not None and not self.launcher.stdout.closed:
            self.launcher.communicate(timeout=60)


@pytest.mark.slow
def test_watch_grades_on_submit(tmp_path):
    course = Course.create(tmp_path / "course", assignments=(A,), release=True)
    exchange = tmp_path / "exchange"
    exchange.mkdir(mode=0o777)
    with open(course.path / "nbgrader_config.py", "a", encoding="utf-8") as f:
        f.write(f"\nc.Exchange.root = {str(exchange)!r}\n")
    course.nbgrader("release_assignment", A)
    learners = {
        name: Learner(course, exchange, name, tmp_path / "homes")
        for name in ("mallory", "alice", "bob", "eve")
    }
    stamps = {"mallory": learners["mallory"].submit(_stalling(course))}

    # First watcher: a time limit longer than any wait of this test, so the stalling notebook
    # is still running whatever the machine's load when the others, handed in after the
    # watcher started grading it, are answered: they join its run and wait for nothing.
    first = Watch(course, tmp_path / "first.err", *LONG)
    first_err = first.err
    try:
        _wait_for_journal(course, "mallory", "pending")
        stamps["alice"] = learners["alice"].submit(correct(course, A))
        stamps["bob"] = learners["bob"].submit(partial(course, A, keep=1))
        stamps["eve"] = learners["eve"].submit('{"cells": [ not a notebook')
        lines = {name: first.answer(name, stamps[name]) for name in ("alice", "bob", "eve")}
        pages = {name: learners[name].feedback() for name in ("alice", "bob", "eve")}
        # All answered and fetched while the stalling notebook is still being graded.
        assert course.journal()[f"{A}/mallory"]["status"] == "pending"
        assert "mallory" not in first_err.read_text()
        print(f"\nwhile a stalling notebook runs: {lines['alice']}")
        for line in lines.values():
            assert "feedback released" in line, line
        full = f"{sum(grade_points(A).values()):g}"
        assert f"{full}/{full}" in lines["alice"]
        assert "failed" not in lines["bob"]
        assert "failed: rnn.ipynb is not valid JSON" in lines["eve"]
        for name, found in pages.items():
            (page,) = found.values()
            assert f"Feedback on your submission of {stamps[name]}." in page
        (page,) = pages["eve"].values()
        assert "could not be graded" in page
        assert "not valid JSON" in page

        # The rate limit: a second submission is answered at once or when the window after
        # the first answer ends, in the same run still.
        second = learners["alice"].submit(partial(course, A, keep=1))
        first.answer("alice", second)
        assert course.journal()[f"{A}/mallory"]["status"] == "pending"
        # SIGTERM in the middle of the stalling notebook: its kernel and sandbox end too.
        first.stop()
    finally:
        first.kill()

    # Two more handed in while no watcher runs: only the later one is graded, when the window
    # after the second ends. The stalling notebook, left pending, is graded again by the next
    # watcher, at the short time limit of a cell (10 s; the notebook's, 60 s, is a backstop).
    third = learners["alice"].submit(partial(course, A, keep=2))
    fourth = learners["alice"].submit(correct(course, A))
    then = Watch(course, tmp_path / "then.err", "--cell-seconds", "10", "--notebook-seconds", "60")
    try:
        line = then.answer("mallory", stamps["mallory"])
        stopped = r"ignored the interrupt|ran longer than 60 s \(wall-clock limit\)"
        assert re.search(f"failed: {A}.ipynb: .*({stopped})", line), line
        assert "feedback released" in line, line
        then.answer("alice", fourth)
        (page,) = learners["mallory"].feedback().values()
        assert f"Feedback on your submission of {stamps['mallory']}." in page
        assert re.search(stopped, page), page
        answered = _answered(course, "alice")
        assert [a["submitted"] for a in answered] == [stamps["alice"], second, fourth]
        for before, after in itertools.pairwise(answered):
            assert after["graded_at"] - before["graded_at"] >= MIN_INTERVAL
        assert third not in first_err.read_text() + then.err.read_text()
        assert len(learners["alice"].feedback()) == 3  # all but the third
        then.stop()
    finally:
        then.kill()


def _wait_for_journal(course: Course, student: str, status: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = (course.path / ".classgrade" / "journal.json").exists()
        journal = course.journal() if found else {}
        if journal.get(f"{A}/{student}", {}).get("status") == status:
            return
        time.sleep(0.5)
    raise AssertionError(f"{student} not {status} within {DEADLINE} s")


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
