"""What a grading run says about each submission: statuses, and text fit to show an instructor.

Every reason, student id and file name that reaches a terminal, ``status`` or a CSV file passes
through here: reasons are built from learner-controlled data (file names, exception messages),
so they are cut to a bounded length and stripped of control characters (no escape codes, no
forged lines), and CSV cells are neutralised against spreadsheet formulas.
"""

from __future__ import annotations

import unicodedata

GRADED = "graded"
FAILED = "failed"
PENDING = "pending"
NOT_SUBMITTED = "not submitted"
GRADED_ELSEWHERE = "graded outside classgrade"

MAX_REASON_CHARS = 300
"""Longest failure reason kept in the journal and shown to the instructor."""

MAX_NAME_CHARS = 80
"""Longest student id, assignment or file name shown in a reason or a table."""

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def clean_text(text: object, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` on one line, without control or format characters, at most ``limit`` chars."""
    out = []
    for ch in str(text):
        category = unicodedata.category(ch)
        if ch in "\n\r\t":
            out.append(" ")
        elif category[0] == "C" or category in ("Zl", "Zp"):
            # Cc (escape codes), Cf (bidirectional overrides), Cs, Co, Cn: never shown.
            out.append("?")
        else:
            out.append(ch)
    cleaned = " ".join("".join(out).split())
    if len(cleaned) > limit:
        cleaned = cleaned[: max(0, limit - 1)] + "…"
    return cleaned


def clean_name(name: object) -> str:
    """A learner-chosen name (file, folder, student id), cleaned and shortened for display."""
    return clean_text(name, MAX_NAME_CHARS)


def csv_cell(value: object) -> str:
    """A CSV cell that no spreadsheet evaluates as a formula (OWASP's CSV-injection advice)."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text
