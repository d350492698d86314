"""Where the checkout is: the tests run from any clone, at any path, as any user."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The checkout the tests run from, wherever it was cloned."""
