"""Grade on submit: ``python -m classgrade watch`` beside the course's exchange.

Every ``poll`` seconds the watcher

1. collects new submissions from the exchange with nbgrader's own collect (``update``: a newer
   submission replaces the collected one, so the latest submission is the one that counts);
2. picks the learners whose collected submission (its ``timestamp.txt``) is not the one last
   answered, and whose last graded attempt at that assignment is at least ``min_interval``
   seconds old: a submission inside that window waits, and is graded when the window ends
   (by then, only the learner's latest submission is left);
3. grades them with the class grader, as ``classgrade grade`` would (the same sandbox, limits,
   journal, and the same single gradebook writer; the run lock keeps it from overlapping an
   instructor's run, in which case it tries again at the next poll); while that run grades, it
   keeps looking every ``poll`` seconds, and what becomes due joins the running run as soon as
   a job slot is free, so no submission waits for a slow one (a hostile notebook, up to its
   time limit) to end; the run ends when nothing is left to grade;
4. answers each: nbgrader's ``generate_feedback`` for a graded one, a short page with the
   reason for a failed one, headed by the time of the submission it is for, then nbgrader's
   ``release_feedback``, so that ``nbgrader fetch_feedback`` (or the Assignments panel) shows it.

SIGTERM or SIGINT stops it: a run in progress is interrupted as ``classgrade grade`` is (its
jobs and sandboxes end with it, its submissions are graded again at the next start).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import html
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from pathlib import Path

from nbgrader.apps import NbGraderAPI
from nbgrader.auth import Authenticator

from .grade_outcome import FAILED, GRADED, Outcome, clean_text
from .grading_options import add_grading_arguments, settings_from_arguments
from .intake import TIMESTAMP_FILE, SubmissionError, read_submission
from .runner import ClassGrader, GradingSetupError, Settings

SECRET_FILE = "submission_secret.txt"
"""Written by ``nbgrader submit``; ``release_feedback`` names the feedback after it."""

MAX_HISTORY = 50
"""Answered submissions kept per learner and assignment in ``.classgrade/watch.json``."""

_SECRET = re.compile(rb"[0-9A-Za-z]{1,512}")


class Stopped(BaseException):
    """SIGTERM or SIGINT: the watcher ends (a ``BaseException``, like ``KeyboardInterrupt``)."""


@dataclass
class Answer:
    """What the watcher did with one learner's submission."""

    assignment: str
    student: str
    submitted: str  # its timestamp.txt
    outcome: Outcome
    released: bool
    seconds: float  # from noticing the submission to releasing its feedback


class Watcher:
    """Collects, grades and answers submissions as they arrive."""

    def __init__(
        self,
        settings: Settings,
        min_interval: float = 600.0,
        log: Callable[[str], None] | None = None,
        poll_seconds: float = 10.0,
    ):
        self.settings = settings
        self.min_interval = min_interval
        self.poll_seconds = poll_seconds
        self.grader = ClassGrader(dataclasses.replace(settings, students=None, progress=None))
        self.state_path = self.grader._state_dir() / "watch.json"
        self.state: dict[str, dict] = self._load_state()
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        cd = self.grader.coursedir
        config = self.grader.config
        self.api = NbGraderAPI(cd, Authenticator(config=config), config=config)
        self.submitted_root = Path(cd.format_path(cd.submitted_directory, ".", ".")).resolve()
        self.feedback_root = Path(cd.format_path(cd.feedback_directory, ".", ".")).resolve()
        self._noticed: dict[tuple[str, str], tuple[str, float]] = {}
        self.stop_requested = False

    def _check_stop(self) -> None:
        # nbgrader's API calls catch every exception, Stopped included (a bare ``except:``):
        # after each of them, a stop that arrived meanwhile is raised again here.
        if self.stop_requested:
            raise Stopped()

    # -- state --------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, dict]:
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_state(self) -> None:
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        os.replace(tmp, self.state_path)

    # -- one poll -----------------------------------------------------------------------------

    def assignments(self) -> list[str]:
        """The assignments watched: those asked for, or every one in the gradebook."""
        if self.settings.assignments:
            return list(self.settings.assignments)
        with self.api.gradebook as gb:
            return sorted(a.name for a in gb.assignments)

    def collect(self, assignment: str) -> None:
        """Collect with nbgrader, a newer submission replacing an older one."""
        result = self.api.collect(assignment, update=True)
        self._check_stop()
        if not result.get("success", False):
            self.log(f"collect {assignment} failed: {clean_text(result.get('log', ''), 1000)}")

    def _submitted_stamp(self, assignment: str, student: str) -> str | None:
        try:
            folder = read_submission(
                self.submitted_root, student, assignment, {TIMESTAMP_FILE}, 100_000
            )
        except (SubmissionError, OSError):
            return None
        return folder.timestamp()

    def due(self, assignment: str, now: float) -> dict[str, str]:
        """Learner -> the submission (its time) to grade now; the others wait for their window."""
        found: dict[str, str] = {}
        if not self.submitted_root.is_dir():
            return found
        for entry in sorted(os.scandir(self.submitted_root), key=lambda e: e.name):
            if not entry.is_dir(follow_symlinks=False):
                continue
            student = entry.name
            stamp = self._submitted_stamp(assignment, student)
            if stamp is None:
                continue
            key = f"{assignment}/{student}"
            last = self.state.get(key, {})
            if last.get("submitted") == stamp:
                continue
            noticed = self._noticed.get((assignment, student))
            if noticed is None or noticed[0] != stamp:
                self._noticed[(assignment, student)] = (stamp, now)
            if now - float(last.get("graded_at", 0.0)) < self.min_interval:
                continue
            found[student] = stamp
        return found

    def look(self, exclude: Container[tuple[str, str]] = ()) -> dict[tuple[str, str], str]:
        """Collect every watched assignment; ``(assignment, learner)`` -> submission to grade.

        Those in ``exclude`` (being graded) are left for later.
        """
        found: dict[tuple[str, str], str] = {}
        for assignment in self.assignments():
            self.collect(assignment)
            for student, stamp in self.due(assignment, time.time()).items():
                if (assignment, student) not in exclude:
                    found[(assignment, student)] = stamp
        return found

    def poll(self) -> list[Answer]:
        """Collect, grade what is due, answer it; what was answered.

        What becomes due while the run grades (looked for every ``poll_seconds``, whenever a
        job slot is free) joins that run, so a submission never waits for a slow one (a
        hostile notebook, up to its time limit) to end: each is answered as it is recorded.
        """
        answers: list[Answer] = []
        due = self.look()  # (assignment, learner) -> the submission being graded
        if not due:
            return answers
        fresh = list(due)
        looked = time.monotonic()

        def feed() -> list[tuple[str, str]]:
            nonlocal fresh, looked
            if not fresh and time.monotonic() - looked >= self.poll_seconds:
                looked = time.monotonic()
                more = self.look(exclude=due)
                due.update(more)
                fresh = list(more)
            named, fresh = fresh, []
            return named

        def answer(_total: int, outcome: Outcome | None) -> None:
            # Called as each submission is recorded.
            if outcome is None or (outcome.assignment, outcome.student) not in due:
                return
            stamp = due.pop((outcome.assignment, outcome.student))
            try:
                answers.append(self._answer(outcome.assignment, outcome.student, stamp, outcome))
            except Exception as exc:  # the run goes on; this learner is tried again
                self.log(f"{outcome.assignment} {outcome.student}: not answered ({exc!r})")

        assignments = sorted({a for a, _ in due})
        grader = ClassGrader(
            dataclasses.replace(self.settings, assignments=assignments, progress=answer)
        )
        try:
            grader.run(feed=feed)
        except GradingSetupError as exc:  # e.g. an instructor's run holds the lock
            self.log(f"not graded now ({exc}); trying again at the next poll")
        return answers

    # -- answering ----------------------------------------------------------------------------

    def _answer(self, assignment: str, student: str, stamp: str, outcome: Outcome) -> Answer:
        graded_at = time.time()
        released = False
        folder = self.feedback_root / student / assignment
        if outcome.status == GRADED:
            result = self.api.generate_feedback(assignment, student, force=True)
            self._check_stop()
            if not result.get("success", False):
                reason = clean_text(result.get("error") or result.get("log", ""), 1000)
                self.log(f"{assignment} {student}: feedback not generated: {reason}")
                outcome = Outcome(assignment, student, FAILED, reason="feedback not generated")
        if outcome.status != GRADED:
            self._failure_page(folder, assignment, outcome)
        released = self._release(folder, assignment, student, stamp)
        key = f"{assignment}/{student}"
        history = self.state.get(key, {}).get("answered", [])[-(MAX_HISTORY - 1) :]
        history.append({"submitted": stamp, "graded_at": graded_at, "status": outcome.status})
        self.state[key] = {
            "submitted": stamp,
            "graded_at": graded_at,
            "status": outcome.status,
            "answered": history,  # which submissions were answered, and when
        }
        self._save_state()
        noticed = self._noticed.pop((assignment, student), (stamp, graded_at))[1]
        answer = Answer(assignment, student, stamp, outcome, released, time.time() - noticed)
        score = (
            f"{outcome.score:g}/{outcome.max_score:g}"
            if outcome.status == GRADED and outcome.score is not None
            else f"failed: {clean_text(outcome.reason)}"
        )
        self.log(
            f"{assignment} {student} (submitted {clean_text(stamp, 100)}): {score}; "
            f"feedback {'released' if released else 'NOT released'} "
            f"{answer.seconds:.0f} s after it was noticed"
        )
        return answer

    def _failure_page(self, folder: Path, assignment: str, outcome: Outcome) -> None:
        """A feedback page for each notebook of a submission that could not be graded."""
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.html"):
            old.unlink()
        reason = html.escape(clean_text(outcome.reason))
        page = (
            "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>"
            f"{html.escape(assignment)}</title></head><body>\n"
            "<h1>Your submission could not be graded</h1>\n"
            f"<p>{reason}</p>\n<p>Nothing was recorded for it: fix it and submit again.</p>\n"
            "</body></html>\n"
        )
        with self.api.gradebook as gb:
            names = [nb.name for nb in gb.find_assignment(assignment).notebooks]
        for name in names or [assignment]:
            (folder / f"{name}.html").write_text(page, encoding="utf-8")

    def _release(self, folder: Path, assignment: str, student: str, stamp: str) -> bool:
        """Head each page with its submission's time, then nbgrader's release_feedback."""
        secret = self._secret(assignment, student)
        if secret is None:
            self.log(f"{assignment} {student}: no {SECRET_FILE} in the submission: not released")
            return False
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SECRET_FILE).write_bytes(secret)
        (folder / TIMESTAMP_FILE).write_text(clean_text(stamp, 100) + "\n")
        heading = (
            "<p style='border:1px solid #888;padding:0.5em'>Feedback on your submission of "
            f"{html.escape(clean_text(stamp, 100))}.</p>\n"
        )
        for page in folder.glob("*.html"):
            text = page.read_text(encoding="utf-8")
            at = re.search(r"<body[^>]*>", text)
            where = at.end() if at else 0
            page.write_text(text[:where] + heading + text[where:], encoding="utf-8")
        result = self.api.release_feedback(assignment, student)
        self._check_stop()
        if not result.get("success", False):
            reason = clean_text(result.get("error") or result.get("log", ""), 1000)
            self.log(f"{assignment} {student}: feedback not released: {reason}")
            return False
        return True

    def _secret(self, assignment: str, student: str) -> bytes | None:
        """The submission's secret, read without following links; None if absent or odd."""
        path = self.submitted_root / student / assignment / SECRET_FILE
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            raw = f.read(1025).strip()
        return raw if _SECRET.fullmatch(raw) else None

    # -- the loop -----------------------------------------------------------------------------

    def run(self, poll: float | None = None) -> None:
        """Poll (every ``poll`` seconds, else ``poll_seconds``) until SIGTERM or SIGINT."""
        poll = self.poll_seconds = self.poll_seconds if poll is None else poll
        with _stop_on_signals(self):
            self.log(
                f"watching {', '.join(self.assignments())}: one graded attempt per learner and "
                f"assignment every {self.min_interval:g} s; polling every {poll:g} s"
            )
            try:
                while True:
                    self.poll()
                    time.sleep(poll)
            except Stopped:
                self.log("stopped")


@contextlib.contextmanager
def _stop_on_signals(watcher: Watcher) -> Iterator[None]:
    def stop(signum: int, _frame: object) -> None:
        watcher.stop_requested = True
        raise Stopped(signum)

    saved = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


# -- the command line (``watch``) -------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``watch``'s options: which assignments, the rate limit, and ``grade``'s limits."""
    p.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    p.add_argument(
        "--min-interval",
        type=float,
        default=600.0,
        help="seconds between two graded attempts of one learner at one assignment (a later "
        "submission is graded when they have passed); default 600",
    )
    p.add_argument("--poll", type=float, default=10.0, help="seconds between two looks")
    add_grading_arguments(p)


def command(args: argparse.Namespace) -> int:
    """``python -m classgrade watch``: runs until SIGTERM or SIGINT."""
    settings = settings_from_arguments(args)
    Watcher(settings, min_interval=args.min_interval).run(poll=args.poll)
    return 0
