"""The run journal: what each (assignment, learner) pair's last grading produced.

It lives in ``.classgrade/`` next to the gradebook, in two files: ``journal.json``, every entry
as of its last rewrite (atomic), and ``journal.jsonl``, one line appended per entry recorded
since. Rewriting the whole journal after each submission cost time in proportion to the class
(60 ms a submission at 10 000 entries, in the run's one main process); appending costs the same
at any size, and the snapshot is rewritten only once the lines outnumber its entries. Reading
replays the lines over the snapshot; a line cut short by a killed run is ignored, so a run
killed at any moment leaves a consistent journal. A submission is only skipped
by a later run when its entry says ``graded`` for exactly the same submitted files and grading
inputs; anything else (``pending`` from a killed run, ``failed``, changed files) is graded again
(``planning`` decides). The run writes it through :meth:`Journal.mark_pending` before grading and
:meth:`Journal.record` after each submission.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from .grade_outcome import GRADED, PENDING, Outcome


class Journal:
    """Each submission's last grading: a JSON snapshot and the lines recorded since."""

    MIN_LINES_BEFORE_REWRITE = 100
    """The lines appended before the snapshot is rewritten, however small the journal."""

    def __init__(self, path: Path):
        self.path = path
        self.lines_path = path.with_suffix(".jsonl")
        self.entries: dict[str, dict] = {}
        self.lines = 0
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict):
                self.entries = loaded
        with contextlib.suppress(OSError):
            with self.lines_path.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    if not line.strip():
                        continue
                    self.lines += 1
                    try:
                        key, entry = json.loads(line)
                    except (ValueError, TypeError):
                        continue  # cut short by a killed run
                    if isinstance(key, str) and isinstance(entry, dict):
                        self.entries[key] = entry

    @staticmethod
    def key(assignment: str, student: str) -> str:
        """The journal's key of ``student``'s ``assignment``."""
        return f"{assignment}/{student}"

    def get(self, assignment: str, student: str) -> dict | None:
        """The entry of ``student``'s ``assignment``, or None."""
        return self.entries.get(self.key(assignment, student))

    def set(self, assignment: str, student: str, **entry: object) -> None:
        """Record ``entry`` for ``student``'s ``assignment``, with the time (UTC)."""
        entry["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.entries[self.key(assignment, student)] = entry

    def mark_pending(self, submissions: Iterable[tuple[str, str, str]]) -> None:
        """Before grading: each ``(assignment, student, fingerprint)`` is ``pending``.

        A run killed before it records a submission leaves it so, and the next run grades it.
        """
        for assignment, student, fingerprint in submissions:
            self.set(assignment, student, status=PENDING, fingerprint=fingerprint)
        self.save()

    def record(self, outcome: Outcome, fingerprint: str) -> None:
        """After grading: the submission's ``outcome``, saved at once."""
        details: dict[str, object]
        if outcome.status == GRADED:
            details = {"score": outcome.score, "max_score": outcome.max_score}
        else:
            details = {"reason": outcome.reason}
        self.set(
            outcome.assignment,
            outcome.student,
            status=outcome.status,
            **details,
            fingerprint=fingerprint,
        )
        key = self.key(outcome.assignment, outcome.student)
        if self.lines >= max(self.MIN_LINES_BEFORE_REWRITE, len(self.entries)):
            self.save()
            return
        with self.lines_path.open("a", encoding="utf-8") as lines:
            # Each line starts a new line: one a killed run cut short stays on its own.
            lines.write("\n" + json.dumps([key, self.entries[key]], sort_keys=True))
        self.lines += 1

    def save(self) -> None:
        """Write the whole journal to its snapshot (atomically), then drop the appended lines.

        Killed in between, the lines are replayed over a snapshot that holds them already.
        """
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
        with contextlib.suppress(FileNotFoundError):
            self.lines_path.unlink()
        self.lines = 0
