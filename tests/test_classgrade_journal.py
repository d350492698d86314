"""The run journal: every recorded grading survives a reload, a killed run and a rewrite."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classgrade.grade_outcome import FAILED, GRADED, Outcome
from classgrade.journal import Journal

OUTCOMES = st.lists(
    st.tuples(
        st.sampled_from(["lstm", "gru"]),
        st.sampled_from([f"learner{i}" for i in range(12)]),
        st.booleans(),
        st.integers(0, 9),
    ),
    max_size=60,
)


def outcome(assignment: str, student: str, graded: bool, points: int) -> Outcome:
    if graded:
        return Outcome(assignment, student, GRADED, float(points), 9.0)
    return Outcome(assignment, student, FAILED, reason=f"reason {points}")


def comparable(entries: dict) -> dict:
    return {k: {f: v for f, v in e.items() if f != "updated"} for k, e in entries.items()}


@settings(max_examples=60, deadline=None)
@given(OUTCOMES, st.integers(1, 5))
def test_a_reloaded_journal_holds_every_last_grading(tmp_path_factory, recorded, threshold):
    path = tmp_path_factory.mktemp("journal") / "journal.json"
    journal = Journal(path)
    journal.MIN_LINES_BEFORE_REWRITE = threshold  # rewrites happen within the example
    journal.mark_pending([("lstm", "learner0", "fp-0")])
    for assignment, student, graded, points in recorded:
        journal.record(outcome(assignment, student, graded, points), f"fp-{points}")
    assert comparable(Journal(path).entries) == comparable(journal.entries)


def test_appending_writes_one_line_and_the_snapshot_is_rewritten_once_lines_outnumber_it(
    tmp_path,
):
    path = tmp_path / "journal.json"
    journal = Journal(path)
    journal.mark_pending([("lstm", f"learner{i}", "fp") for i in range(150)])
    snapshot = path.read_text()
    for i in range(150):
        journal.record(outcome("lstm", f"learner{i}", True, 9), "fp")
    # 150 lines appended, none past the 150 entries: the snapshot is as the run began.
    assert path.read_text() == snapshot
    assert len(journal.lines_path.read_text().split("\n")) == 1 + 150  # each starts a line
    journal.record(outcome("lstm", "learner0", False, 1), "fp")
    assert not journal.lines_path.exists()
    assert json.loads(path.read_text())["lstm/learner0"]["status"] == FAILED


@pytest.mark.parametrize("cut", [1, 10, 25])
def test_a_line_cut_short_by_a_killed_run_is_ignored_and_the_next_one_kept(tmp_path, cut):
    path = tmp_path / "journal.json"
    journal = Journal(path)
    journal.mark_pending([("lstm", "ann", "fp"), ("lstm", "bob", "fp")])
    journal.record(outcome("lstm", "ann", True, 7), "fp")
    text = journal.lines_path.read_text()
    journal.lines_path.write_text(text + text[:cut])  # a second line, killed mid-write
    again = Journal(path)
    assert again.get("lstm", "ann")["score"] == 7.0
    again.record(outcome("lstm", "bob", True, 5), "fp")
    assert Journal(path).get("lstm", "bob")["score"] == 5.0


def test_lines_replayed_over_a_snapshot_that_holds_them_change_nothing(tmp_path):
    """A run killed between the snapshot's rewrite and the lines' removal."""
    path = tmp_path / "journal.json"
    journal = Journal(path)
    journal.mark_pending([("lstm", "ann", "fp")])
    journal.record(outcome("lstm", "ann", True, 7), "fp")
    lines = journal.lines_path.read_text()
    journal.save()
    journal.lines_path.write_text(lines)
    assert Journal(path).entries == journal.entries


def test_an_unreadable_journal_is_an_empty_one(tmp_path):
    path = tmp_path / "journal.json"
    path.write_text("[1, 2")
    path.with_suffix(".jsonl").write_bytes(b'\n["lstm/ann", 3]\n\xff\xfe\n{"a": 1}')
    assert Journal(path).entries == {}
