"""What the instructor sees: a progress bar, the end-of-run summary and the grade export."""

from __future__ import annotations

import csv
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from nbgrader.api import Gradebook, MissingEntry

from .journal import FAILED, GRADED, PENDING, Journal

if TYPE_CHECKING:
    from .runner import ClassGrader, Outcome, RunSummary


class Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, total: int, enabled: bool = True, stream: TextIO | None = None):
        self.total = total
        self.done = 0
        self.failed = 0
        self.enabled = enabled and total > 0
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.tty = self.stream.isatty()
        self._last_plain = 0.0

    def advance(self, outcome: Outcome) -> None:
        self.done += 1
        self.failed += outcome.status == FAILED
        if not self.enabled:
            return
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
            self.stream.write("\r" + line[: cols - 1])
            self.stream.flush()
        elif time.monotonic() - self._last_plain > 5 or self.done == self.total:
            self._last_plain = time.monotonic()
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def mean_scores(grader: ClassGrader) -> dict[str, tuple[float, float, int]]:
    """Mean score and maximum per assignment over every graded submission in the journal."""
    sums: dict[str, list[float]] = defaultdict(list)
    maxima: dict[str, float] = {}
    for key, entry in grader.journal.entries.items():
        if entry.get("status") == GRADED and entry.get("score") is not None:
            assignment = key.split("/", 1)[0]
            sums[assignment].append(float(entry["score"]))
            maxima[assignment] = float(entry.get("max_score") or 0)
    return {a: (sum(v) / len(v), maxima[a], len(v)) for a, v in sorted(sums.items())}


def format_summary(summary: RunSummary, grader: ClassGrader) -> str:
    lines = []
    per_nb = summary.seconds / summary.notebooks if summary.notebooks else 0.0
    lines.append(
        f"Graded {len(summary.graded)}, failed {len(summary.failed)}, "
        f"unchanged since the last run {len(summary.skipped)}; "
        f"{summary.seconds:.1f} s ({per_nb:.2f} s per notebook)."
    )
    if summary.backup:
        lines.append(f"Gradebook backed up to {summary.backup}")
    if summary.failed:
        lines.append("")
        lines.append("Failed (no grade recorded; see `python -m classgrade status`):")
        for o in sorted(summary.failed, key=lambda o: (o.assignment, o.student)):
            lines.append(f"  {o.assignment:10s} {o.student:20s} {o.reason}")
    means = mean_scores(grader)
    if means:
        lines.append("")
        lines.append("Mean score per assignment (graded submissions):")
        for assignment, (mean, maximum, n) in means.items():
            lines.append(f"  {assignment:10s} {mean:6.2f} / {maximum:g}  ({n} graded)")
    return "\n".join(lines)


def status_rows(grader: ClassGrader) -> list[dict]:
    """One row per (assignment, learner) known to the journal or the gradebook."""
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
                    row["status"] = GRADED if status == GRADED else "graded outside classgrade"
                elif status == PENDING:
                    row["reason"] = "grading did not finish (the run was interrupted)"
                elif status is None:
                    row["status"] = "not submitted"
                rows.append(row)
    return rows


def export_csv(grader: ClassGrader, path: Path | None) -> int:
    """Grades with an explicit status column: a failure is never a zero."""
    rows = status_rows(grader)
    fields = ["assignment", "student", "status", "score", "max_score", "reason"]
    out = open(path, "w", newline="") if path else sys.stdout
    try:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    finally:
        if path:
            out.close()
    return sum(r["status"] == FAILED for r in rows)
