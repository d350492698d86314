"""The run journal: what each (assignment, learner) pair's last grading produced.

It lives in ``.classgrade/journal.json`` next to the gradebook and is rewritten atomically after
every submission, so a run killed at any moment leaves it consistent. A submission is only skipped
by a later run when its entry says ``graded`` for exactly the same submitted files; anything
else (``pending`` from a killed run, ``failed``, changed files) is graded again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


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

    def set(self, assignment: str, student: str, **entry) -> None:
        """Record ``entry`` for ``student``'s ``assignment``, with the time (UTC)."""
        entry["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.entries[self.key(assignment, student)] = entry

    def save(self) -> None:
        """Write the journal to its file, replacing it whole."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
