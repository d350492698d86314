"""What the instructor sees: a progress bar, the end-of-run summary and the grade export.

Failure reasons embed file names and exception messages, so they are cleaned (one line, no
control characters, bounded length: :func:`~classgrade.grade_outcome.clean_text`) where they are
shown. Student ids and assignment names are keys: two different ids must never look the same
in a table or an export (an LMS import keyed on them would give one learner the other's
grade), so they are shown whole and faithfully, escaped where they must be
(:func:`shown_id`). Every cell of an exported CSV is neutralised against spreadsheet formulas.
"""

from __future__ import annotations

import csv
import shutil
import sys
import time
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Protocol, TextIO

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory

from .grade_outcome import (
    FAILED,
    GRADED,
    GRADED_ELSEWHERE,
    NOT_SUBMITTED,
    PENDING,
    RUN_INTERRUPTED,
    Outcome,
    RunSummary,
    clean_name,
    clean_text,
    csv_cell,
)
from .journal import Journal


def _needs_escape(ch: str) -> bool:
    category = unicodedata.category(ch)
    return ch == "\\" or category[0] == "C" or (category[0] == "Z" and ch != " ")


def shown_id(name: str) -> str:
    r"""A student id or assignment name on one line, whole, and told apart from every other.

    Control, format, private-use, unassigned and surrogate characters, every whitespace but
    the ASCII space (a no-break space, a line separator) and the backslash itself are written
    as ``\xNN``, ``\uNNNN`` or ``\UNNNNNNNN``; so are spaces at either end. Nothing is
    collapsed or cut: different ids always show differently, and an id of plain characters
    shows exactly as it is.
    """
    out = []
    last = len(name) - 1
    for i, ch in enumerate(name):
        if _needs_escape(ch) or (ch == " " and i in (0, last)):
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
        else:
            out.append(ch)
    return "".join(out)


def csv_id(name: str) -> str:
    """An id's CSV cell: :func:`shown_id`, escaped with a leading ``'`` where needed.

    That is, when it would start like a formula or with ``'`` itself (so the escape can be
    undone: drop one leading ``'``).
    """
    text = shown_id(name)
    return "'" + text if text.startswith(("'", *FORMULA_STARTS)) else text


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
ID_FIELDS = ("assignment", "student")


class Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal).

    A run's progress callback (:data:`~classgrade.grade_outcome.ProgressCallback`).
    """

    def __init__(self, stream: TextIO | None = None):
        self.total = 0
        self.done = 0
        self.failed = 0
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.tty = self.stream.isatty()
        self._last_plain = 0.0

    def __call__(self, total: int, outcome: Outcome | None) -> None:
        """Show the run's progress: ``outcome`` is None when the run starts grading."""
        if outcome is None:  # the run starts grading
            self.total, self.done, self.failed = total, 0, 0
            self.started = time.monotonic()
            return
        self.done += 1
        self.failed += outcome.status == FAILED
        elapsed = time.monotonic() - self.started
        rate = elapsed / self.done
        eta = rate * (self.total - self.done)
        width = 30
        filled = int(width * self.done / self.total)
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"failed {self.failed}  {elapsed:5.0f}s elapsed, ~{eta:4.0f}s left"
        )
        if self.tty:
            cols = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r" + line[: cols - 1] + ("\n" if self.done == self.total else ""))
            self.stream.flush()
        elif time.monotonic() - self._last_plain > 5 or self.done == self.total:
            self._last_plain = time.monotonic()
            self.stream.write(line + "\n")
            self.stream.flush()


class Course(Protocol):
    """What the reports read of a course's grader (a ``runner.ClassGrader``)."""

    journal: Journal
    db_url: str
    coursedir: CourseDirectory  # its ``course_id``


def mean_scores(grader: Course) -> dict[str, tuple[float, float, int]]:
    """Mean score and maximum per assignment over every graded submission in the journal."""
    sums: dict[str, list[float]] = defaultdict(list)
    maxima: dict[str, float] = {}
    for key, entry in grader.journal.entries.items():
        if entry.get("status") == GRADED and entry.get("score") is not None:
            assignment = key.split("/", 1)[0]
            sums[assignment].append(float(entry["score"]))
            maxima[assignment] = float(entry.get("max_score") or 0)
    return {a: (sum(v) / len(v), maxima[a], len(v)) for a, v in sorted(sums.items())}


def format_summary(summary: RunSummary, grader: Course) -> str:
    """The run's summary, as text for the instructor."""
    lines = []
    per_nb = summary.seconds / summary.notebooks if summary.notebooks else 0.0
    lines.append(
        f"Graded {len(summary.graded)}, failed {len(summary.failed)}, "
        f"unchanged since the last run {len(summary.skipped)}; "
        f"{summary.seconds:.1f} s ({per_nb:.2f} s per notebook)."
    )
    if summary.backup:
        lines.append(f"Gradebook backed up to {clean_text(summary.backup, 1000)}")
    if getattr(summary, "limits_note", ""):
        lines.append(summary.limits_note)
    if summary.failed:
        lines.append("")
        lines.append("Failed (no grade recorded; see `python -m classgrade status`):")
        for o in sorted(summary.failed, key=lambda o: (o.assignment, o.student)):
            lines.append(
                f"  {shown_id(o.assignment):10s} {shown_id(o.student):20s} {clean_text(o.reason)}"
            )
    means = mean_scores(grader)
    if means:
        lines.append("")
        lines.append("Mean score per assignment (graded submissions):")
        for assignment, (mean, maximum, n) in means.items():
            lines.append(f"  {shown_id(assignment):10s} {mean:6.2f} / {maximum:g}  ({n} graded)")
    return "\n".join(lines)


def status_rows(grader: Course) -> list[dict]:
    """One row per (assignment, learner) known to the journal or the gradebook.

    Ids are exact (shown through :func:`shown_id`); status and reason are display text,
    already cleaned (one line, bounded).
    """
    journal: Journal = grader.journal
    rows = []
    with Gradebook(grader.db_url, grader.coursedir.course_id) as gb:
        in_journal = [key.split("/", 1) for key in journal.entries]
        students = sorted({s.id for s in gb.students} | {s for _, s in in_journal})
        assignments = sorted({a.name for a in gb.assignments} | {a for a, _ in in_journal})
        for assignment in assignments:
            for student in students:
                entry = journal.get(assignment, student) or {}
                status = entry.get("status")
                row = {
                    "assignment": assignment,
                    "student": student,
                    "status": status or "",
                    "score": "",
                    "max_score": "",
                    "reason": entry.get("reason", ""),
                }
                try:
                    submission = gb.find_submission(assignment, student)
                except MissingEntry:
                    submission = None
                if submission is not None and status in (GRADED, None):
                    row["score"] = f"{submission.score:g}"
                    row["max_score"] = f"{submission.max_score:g}"
                    row["status"] = GRADED if status == GRADED else GRADED_ELSEWHERE
                elif status == PENDING:
                    row["reason"] = RUN_INTERRUPTED
                elif status is None:
                    row["status"] = NOT_SUBMITTED
                rows.append(_clean_row(row))
    return rows


def _clean_row(row: dict) -> dict:
    row["status"] = clean_name(row["status"])
    row["reason"] = clean_text(row["reason"])
    return row


STATUS_FIELDS = ["assignment", "student", "status", "score", "max_score", "reason"]


def format_status(rows: list[dict], failed_only: bool = False) -> str:
    """The ``status`` table: exactly one line per row shown, every field cleaned again."""
    lines = []
    for row in rows:
        if failed_only and row["status"] in (GRADED, GRADED_ELSEWHERE, NOT_SUBMITTED):
            continue
        score = f"{row['score']}/{row['max_score']}" if row["score"] else ""
        lines.append(
            f"{shown_id(row['assignment']):10s} {shown_id(row['student']):20s} "
            f"{clean_name(row['status']):14s} {clean_name(score):10s} "
            f"{clean_text(row['reason'])}".rstrip()
        )
    return "\n".join(lines)


def write_csv(rows: list[dict], out: TextIO, fields: list[str] = STATUS_FIELDS) -> None:
    """Rows as CSV: ids faithful (:func:`csv_id`), other cells cleaned; none a formula."""
    writer = csv.writer(out)
    writer.writerow([csv_cell(f) for f in fields])
    for row in rows:
        writer.writerow(
            [
                csv_id(str(row.get(f, "")))
                if f in ID_FIELDS
                else csv_cell(clean_text(row.get(f, "")))
                for f in fields
            ]
        )


def export_csv(grader: Course, path: Path | None) -> int:
    """Grades with an explicit status column: a failure is never a zero."""
    rows = status_rows(grader)
    out = open(path, "w", newline="", encoding="utf-8") if path else sys.stdout
    try:
        write_csv(rows, out)
    finally:
        if path:
            out.close()
    return sum(r["status"] == FAILED for r in rows)
