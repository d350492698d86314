"""The run journal: what each (assignment, learner) pair's last grading produced.

It lives in ``.classgrade/journal.json`` next to the gradebook and is rewritten atomically after
every submission, so a run killed at any moment leaves it consistent. A submission is only skipped
by a later run when its entry says ``graded`` for exactly the same submitted files and grading
inputs; anything else (``pending`` from a killed run, ``failed``, changed files) is graded again
(``planning`` decides). The run writes it through :meth:`Journal.mark_pending` before grading and
:meth:`Journal.record` after each submission.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from .grade_outcome import GRADED, PENDING, Outcome


class Journal:
    """Each submission's last grading, kept in a JSON file."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = {}
        if path.exists():
            try:
                self.entries = json.loads(path.read_text())
            except (OSError, ValueError):
                self.entries = {}

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
        self.save()

    def save(self) -> None:
        """Write the journal to its file, replacing it whole."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
