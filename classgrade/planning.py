"""What a run grades: each submission's fingerprint, and which ones are unchanged.

A submission is skipped only when the journal says its last grading ended ``graded`` with the
same fingerprint: the digest of its files joined to the digest of everything else that decides
a grade (:func:`grading_inputs_digest`). Anything else (``pending`` from a killed run,
``failed``, a submission that cannot be read, changed files or grading code) is graded again.

:func:`plan_run` decides this from plain data alone, so it is tested without nbgrader.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .grade_outcome import GRADED, Outcome

UNREADABLE = "unreadable"
"""The fingerprint's first part for a submission whose folder could not be read."""


def submission_fingerprint(submission_digest: str, inputs_digest: str) -> str:
    """The fingerprint of a submission whose files have ``submission_digest``."""
    return f"{submission_digest}:{inputs_digest}"


def unreadable_fingerprint(inputs_digest: str) -> str:
    """The fingerprint of a submission that could not be read (never skipped)."""
    return f"{UNREADABLE}:{inputs_digest}"


def fingerprint_has(fingerprint: str, submission_digest: str) -> bool:
    """Whether ``fingerprint`` was taken of a submission whose files have that digest."""
    return fingerprint.startswith(f"{submission_digest}:")


def grading_inputs_digest(
    trees: Sequence[tuple[str, Path]],
    config_file: Path,
    signatures: Iterable[str],
    settings: Sequence[object],
) -> str:
    """A digest of everything besides the submission that decides its grade.

    ``trees`` are labelled folders whose files count (the grading code, the hidden tests'
    packages, the assignment's source and release folders); ``signatures`` the gradebook's
    view of each notebook; ``settings`` the run's settings that change a grade (JSON-able).
    """
    digest = hashlib.sha256()
    for label, root in trees:
        digest.update(f"\0{label}\0".encode())
        if not root.exists():
            continue
        for path in sorted(
            p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ):
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes())
    digest.update(config_file.read_bytes() if config_file.is_file() else b"")
    for signature in signatures:
        digest.update(signature.encode())
    digest.update(json.dumps(list(settings)).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Candidate:
    """A learner's submission of an assignment, as found before the run grades anything."""

    assignment: str
    student: str
    fingerprint: str
    unreadable: str = ""
    """Why the submission's folder could not be read ("" if it could)."""


@dataclass
class Plan:
    """What a run grades, and what it leaves as it is."""

    to_grade: list[Candidate] = field(default_factory=list)
    unchanged: list[Outcome] = field(default_factory=list)


def plan_run(
    candidates: Iterable[Candidate],
    last_gradings: Mapping[tuple[str, str], Mapping[str, Any]],
    force: bool = False,
) -> Plan:
    """Split ``candidates`` into those to grade and those unchanged since their last grading.

    ``last_gradings`` holds the journal's entry of each (assignment, student) that has one.
    With ``force``, everything is graded.
    """
    plan = Plan()
    for candidate in candidates:
        entry = last_gradings.get((candidate.assignment, candidate.student))
        if (
            not force
            and not candidate.unreadable
            and entry
            and entry.get("status") == GRADED
            and entry.get("fingerprint") == candidate.fingerprint
        ):
            plan.unchanged.append(
                Outcome(
                    candidate.assignment,
                    candidate.student,
                    GRADED,
                    entry.get("score"),
                    entry.get("max_score"),
                )
            )
        else:
            plan.to_grade.append(candidate)
    return plan
