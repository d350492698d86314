"""What a grading run grades: planning from fingerprints and the journal, without nbgrader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from classgrade.grade_outcome import FAILED, GRADED, PENDING, Outcome
from classgrade.planning import (
    Candidate,
    fingerprint_has,
    grading_inputs_digest,
    plan_run,
    submission_fingerprint,
    unreadable_fingerprint,
)

ROOT = Path(__file__).resolve().parent.parent
A = "rnn"


def _graded(fingerprint: str, score: float = 3.0) -> dict[str, object]:
    return {"status": GRADED, "score": score, "max_score": 5.0, "fingerprint": fingerprint}


def test_planning_does_not_import_nbgrader() -> None:
    """The planning module stands alone: importing it loads neither nbgrader nor nbformat."""
    code = (
        "import sys, classgrade.planning; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('nbgrader', 'nbformat')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_an_unchanged_graded_submission_is_skipped_with_its_last_score() -> None:
    fp = submission_fingerprint("files", "inputs")
    plan = plan_run([Candidate(A, "ann", fp)], {(A, "ann"): _graded(fp, 4.0)})
    assert plan.to_grade == []
    assert plan.unchanged == [Outcome(A, "ann", GRADED, 4.0, 5.0)]


@pytest.mark.parametrize(
    "entry",
    [
        None,
        _graded(submission_fingerprint("older files", "inputs")),
        _graded(submission_fingerprint("files", "older grading code")),
        {"status": FAILED, "reason": "x", "fingerprint": submission_fingerprint("files", "inputs")},
        {"status": PENDING, "fingerprint": submission_fingerprint("files", "inputs")},
        {"status": GRADED, "score": 1.0, "max_score": 5.0},
    ],
    ids=["new", "files changed", "inputs changed", "failed", "pending", "no fingerprint"],
)
def test_anything_but_the_same_graded_submission_is_graded(entry: dict | None) -> None:
    candidate = Candidate(A, "ann", submission_fingerprint("files", "inputs"))
    last = {} if entry is None else {(A, "ann"): entry}
    plan = plan_run([candidate], last)
    assert plan.to_grade == [candidate]
    assert plan.unchanged == []


def test_force_grades_everything_and_unreadable_is_never_skipped() -> None:
    fp = submission_fingerprint("files", "inputs")
    same = {(A, "ann"): _graded(fp)}
    assert plan_run([Candidate(A, "ann", fp)], same, force=True).unchanged == []
    bad = unreadable_fingerprint("inputs")
    unreadable = Candidate(A, "ann", bad, unreadable="a link in the submission")
    plan = plan_run([unreadable], {(A, "ann"): _graded(bad)})
    assert plan.to_grade == [unreadable]


def test_plans_keep_the_candidates_order_and_pair_each_with_its_own_entry() -> None:
    fp = {s: submission_fingerprint(s, "inputs") for s in ("ann", "bob", "cy")}
    candidates = [Candidate(A, s, fp[s]) for s in ("cy", "ann", "bob")]
    last = {(A, "ann"): _graded(fp["ann"]), (A, "bob"): _graded(fp["ann"]), ("other", "cy"): {}}
    plan = plan_run(candidates, last)
    assert [c.student for c in plan.to_grade] == ["cy", "bob"]
    assert [o.student for o in plan.unchanged] == ["ann"]


def test_a_fingerprint_names_its_submission_exactly() -> None:
    fp = submission_fingerprint("abc", "inputs")
    assert fingerprint_has(fp, "abc")
    assert not fingerprint_has(fp, "ab")
    assert not fingerprint_has(fp, "inputs")
    assert not fingerprint_has(unreadable_fingerprint("inputs"), "abc")


def test_the_grading_inputs_digest_follows_files_signatures_and_settings(tmp_path: Path) -> None:
    tree = tmp_path / "source"
    (tree / "__pycache__").mkdir(parents=True)
    (tree / "data.csv").write_text("1,2\n")
    config = tmp_path / "nbgrader_config.py"

    def digest(signatures: tuple[str, ...] = ("sig",), settings: tuple = (1,)) -> str:
        return grading_inputs_digest([("source", tree)], config, signatures, list(settings))

    first = digest()
    assert digest() == first
    (tree / "__pycache__" / "data.cpython.pyc").write_bytes(b"ignored")
    assert digest() == first
    assert digest(signatures=("other",)) != first
    assert digest(settings=(2,)) != first
    config.write_text("c = get_config()\n")
    with_config = digest()
    assert with_config != first
    (tree / "data.csv").write_text("1,3\n")
    assert digest() != with_config
    (tree / "data.csv").rename(tree / "renamed.csv")
    assert digest() not in (first, with_config)
