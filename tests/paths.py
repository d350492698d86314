"""Where the checkout is: the tests run from any clone, at any path, as any user."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The checkout the tests run from, wherever it was cloned."""

RUN_FOLDER_VARIABLE = "COURSE_TESTS_RUN_FOLDER"
"""Names a folder every process of one pytest run shares (set by tests/conftest.py)."""
