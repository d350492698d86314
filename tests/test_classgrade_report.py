"""What classgrade shows the instructor is clean and faithful, whatever the learners chose.

Student ids are folder names under ``submitted/`` and failure reasons embed file names and
exception messages: none of it may reach the terminal, ``status``, the end-of-run summary or
an exported CSV with control characters, extra lines or a spreadsheet formula; reasons are
bounded in length, and ids are shown whole and faithfully (two ids never look the same).
"""

from __future__ import annotations

import csv
import io
import unicodedata
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from classgrade import cli
from classgrade.grade_outcome import (
    FAILED,
    GRADED,
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    PENDING,
    clean_name,
    clean_text,
    csv_cell,
)
from classgrade.journal import Journal
from classgrade.report import (
    csv_id,
    export_csv,
    format_status,
    format_summary,
    shown_id,
    status_rows,
    write_csv,
)

A = "rnn"
HOSTILE_IDS = [
    '=HYPERLINK("http://x")',
    "+1",
    "-2",
    "@SUM(A1)",
    "a\x1b[31mb",
    "\tTAB",
    "\rCR",
    "bidi\u202eevil",
    "long" + "y" * 500,
]
HOSTILE_REASONS = [
    "kernel died\n" + "x" * 300_000,
    "\x1b]0;title\x07 set the terminal title",
    "file \u202egpj.exe",
    "=1+2",
    "-cmd|' /C calc'!A0",
    "@SUM(A1)",
    "first line\rforged line\ngraded 10/10",
    "+" + "\x00\x08\x7f\x9b" * 10,
]
GOOD = "good"
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _no_control(text: str) -> bool:
    return not any(
        unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp")
        for ch in text
    )


def _course(tmp_path: Path) -> Path:
    """A course folder with a gradebook and a journal holding hostile ids and reasons."""
    course = tmp_path / "course"
    course.mkdir()
    db = course / "gradebook.db"
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'demo'\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{db.as_posix()}'\n"
    )
    with Gradebook(f"sqlite:///{db.as_posix()}", "demo") as gb:
        gb.add_assignment(A)
        for student in [GOOD, "plain_outside", *HOSTILE_IDS]:
            gb.add_student(student)
        with warnings.catch_warnings():
            # nbgrader's add_submission trips an SQLAlchemy autoflush warning (harmless here).
            warnings.simplefilter("ignore", SAWarning)
            gb.add_submission(A, GOOD)
            gb.add_submission(A, "plain_outside")  # in the gradebook, not in the journal
    journal = Journal(course / ".classgrade" / "journal.json")
    journal.path.parent.mkdir()
    journal.set(A, GOOD, status=GRADED, score=0.0, max_score=0.0)
    for i, student in enumerate(HOSTILE_IDS):
        reason = HOSTILE_REASONS[i % len(HOSTILE_REASONS)]
        journal.set(A, student, status=FAILED, reason=reason)
    journal.set("lstm", "=cmd()", status=PENDING, reason="\x1b[2J")
    journal.set("lstm", "\u2028sep", status=FAILED, reason="=2\u2029+3")
    journal.save()
    return course


class _Grader:
    """What report.py reads from a ClassGrader: its journal, gradebook URL and course id."""

    def __init__(self, course: Path):
        self.journal = Journal(course / ".classgrade" / "journal.json")
        self.db_url = f"sqlite:///{(course / 'gradebook.db').as_posix()}"
        self.coursedir = type("CourseDirectory", (), {"course_id": "demo"})()


@pytest.fixture
def course(tmp_path):
    return _course(tmp_path)


def _read_csv(text: str) -> list[list[str]]:
    assert csv.field_size_limit() == 131072, "the reader must keep its default field limit"
    return list(csv.reader(io.StringIO(text, newline="")))


def _assert_clean_csv(text: str, expected_rows: int) -> list[dict]:
    table = _read_csv(text)
    header, body = table[0], table[1:]
    assert header == ["assignment", "student", "status", "score", "max_score", "reason"]
    assert len(body) == expected_rows
    for row in body:
        assert len(row) == len(header)
        for k, cell in enumerate(row):
            assert _no_control(cell), repr(cell)
            if header[k] not in ("assignment", "student"):  # ids are whole (escaped)
                assert len(cell) <= MAX_REASON_CHARS + 1
            assert not cell.startswith(FORMULA), repr(cell)
    # Every line of the file is one record: no reason or id spans lines.
    assert len(text.splitlines()) == expected_rows + 1
    return [dict(zip(header, row, strict=True)) for row in body]


def test_clean_text_bounds_and_strips():
    reason = clean_text("a\x1b[31mb\n" + "x" * 300_000)
    assert len(reason) == MAX_REASON_CHARS
    assert reason.endswith("…")
    assert "\x1b" not in reason
    assert "\n" not in reason
    assert _no_control(clean_text("\x1b]0;title\x07 \u202e \u2066 \u200b \x00 \x9b"))
    assert len(clean_name("n" * 1000)) == MAX_NAME_CHARS
    assert clean_text("  two\n\nlines  ") == "two lines"


@pytest.mark.parametrize("value", ["=1", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "\nx"])
def test_csv_cell_neutralises_formulas(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["alice", "10", "0.5", "", "a=b", "graded"])
def test_csv_cell_keeps_plain_values(value):
    assert csv_cell(value) == value


def test_status_rows_are_cleaned_and_one_per_pair(course):
    rows = status_rows(_Grader(course))
    students = {GOOD, "plain_outside", *HOSTILE_IDS, "=cmd()", "\u2028sep"}
    assert len(rows) == 2 * len(students)  # two assignments, every learner in each
    assert {r["student"] for r in rows} == students  # the exact ids
    for row in rows:
        for key in ("status", "reason"):
            assert _no_control(row[key]), row
        assert _no_control(shown_id(row["student"]))
        assert len(row["reason"]) <= MAX_REASON_CHARS
    by_id = {(r["assignment"], r["student"]): r for r in rows}
    assert by_id[(A, GOOD)]["status"] == GRADED
    assert by_id[(A, "plain_outside")]["status"] == "graded outside classgrade"
    assert by_id[(A, "a\x1b[31mb")]["status"] == FAILED
    assert by_id[("lstm", "=cmd()")]["reason"].startswith("grading did not finish")


def test_status_output_has_one_clean_line_per_row(course):
    rows = status_rows(_Grader(course))
    text = format_status(rows)
    lines = text.split("\n")
    assert len(lines) == len(rows)
    assert _no_control(text.replace("\n", ""))
    # Ids are shown whole (a folder name is at most 255 bytes); the rest stays bounded.
    longest_id = max(len(shown_id(r["student"])) for r in rows)
    assert all(len(line) < 200 + MAX_REASON_CHARS + longest_id for line in lines)
    assert not any(line.startswith("graded 10/10") for line in lines)
    failed = format_status(rows, failed_only=True).split("\n")
    assert len(failed) == sum(r["status"] in (FAILED, PENDING) for r in rows)


def test_export_reads_back_with_the_default_field_limit(course, tmp_path):
    grader = _Grader(course)
    out = tmp_path / "grades.csv"
    failed = export_csv(grader, out)
    rows = status_rows(grader)
    assert failed == sum(r["status"] == FAILED for r in rows)
    text = out.read_text(encoding="utf-8")
    records = _assert_clean_csv(text, len(rows))
    students = {r["student"] for r in records}
    for hostile in ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "=cmd()"]:
        assert "'" + hostile in students
    reasons = {r["reason"] for r in records}
    assert "'=1+2" in reasons
    assert "'@SUM(A1)" in reasons
    assert any(r.startswith("'-cmd") for r in reasons)
    assert all(not r.startswith(FORMULA) for r in reasons)


def test_export_to_standard_output(course, capsys):
    assert cli.main(["export", "--course-dir", str(course)]) == 0
    captured = capsys.readouterr()
    _assert_clean_csv(captured.out, len(status_rows(_Grader(course))))
    assert "failed" in captured.err


def test_write_csv_neutralises_every_cell():
    out = io.StringIO(newline="")
    write_csv([{"assignment": "=a", "student": "+b", "score": "-1", "reason": "@c\x1b[0m"}], out)
    record = _read_csv(out.getvalue())[1]
    assert record == ["'=a", "'+b", "", "'-1", "", "'@c?[0m"]


# Ids that display cleaning (collapsing whitespace, cutting to 80 characters, replacing
# controls) made look the same as a classmate's.
LOOKALIKE_IDS = [
    "alice",
    "alice\u00a0",
    "alice ",
    " alice",
    "alice\u2003",
    "alice\u200b",
    "al ice",
    "al  ice",
    "al\tice",
    "al?ice",
    "al\x1bice",
    "al\\x1bice",
    "al\\\\x1bice",
    "'+alice",
    "+alice",
    "''+alice",
    "y" * 79 + "a",
    "y" * 79 + "b",
    "y" * 200,
    "y" * 201,
]


def test_different_ids_never_show_or_export_the_same():
    shown = [shown_id(i) for i in LOOKALIKE_IDS]
    exported = [csv_id(i) for i in LOOKALIKE_IDS]
    assert len(set(shown)) == len(LOOKALIKE_IDS)
    assert len(set(exported)) == len(LOOKALIKE_IDS)
    for text in shown + exported:
        assert _no_control(text), repr(text)
        assert not any(unicodedata.category(ch)[0] == "Z" and ch != " " for ch in text)
    # Plain ids are exported exactly; the formula escape is undone by dropping one quote.
    assert csv_id("alice") == "alice"
    assert csv_id("李雷_01") == "李雷_01"
    assert csv_id("+alice") == "'+alice"
    assert csv_id("'+alice") == "''+alice"


def test_export_keeps_lookalike_ids_apart(tmp_path):
    rows = [
        {"assignment": A, "student": sid, "status": GRADED, "score": str(k), "reason": ""}
        for k, sid in enumerate(LOOKALIKE_IDS)
    ]
    out = io.StringIO(newline="")
    write_csv(rows, out)
    records = _read_csv(out.getvalue())[1:]
    assert len({r[1] for r in records}) == len(LOOKALIKE_IDS)
    # Each learner keeps their own score under their own id.
    assert {r[1]: r[3] for r in records} == {
        csv_id(sid): str(k) for k, sid in enumerate(LOOKALIKE_IDS)
    }


def test_status_command_through_the_cli(course, capsys):
    assert cli.main(["status", "--course-dir", str(course)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == len(status_rows(_Grader(course)))
    assert _no_control(out.replace("\n", ""))
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert any(line.startswith(f"{A:10s} {GOOD:20s} {GRADED}") for line in lines)

    assert cli.main(["status", "--failed", "--course-dir", str(course)]) == 0
    failed = capsys.readouterr().out.splitlines()
    assert failed
    assert all((FAILED in line) or (PENDING in line) for line in failed)
    assert not any(GOOD in line.split()[:2] for line in failed)


def _outcome(student: str, status: str, reason: str = "") -> SimpleNamespace:
    return SimpleNamespace(assignment=A, student=student, status=status, reason=reason)


def test_summary_lines_are_clean(course):
    """The end-of-run summary as the runner prints it (an object with its fields and lists)."""
    grader = _Grader(course)
    failed = [
        _outcome(student, FAILED, HOSTILE_REASONS[i % len(HOSTILE_REASONS)])
        for i, student in enumerate(HOSTILE_IDS)
    ]
    summary = SimpleNamespace(
        graded=[_outcome(GOOD, GRADED)],
        failed=failed,
        skipped=[],
        seconds=1.0,
        notebooks=len(failed) + 1,
        backup=course / "gradebook-backups" / "gradebook-\x1b[31m.db",
    )
    text = format_summary(summary, grader)
    assert _no_control(text.replace("\n", ""))
    lines = text.split("\n")
    assert len(lines) == 2 + 2 + len(HOSTILE_IDS) + 2 + 1  # head and backup, failures, means
    assert all(line.startswith(f"  {A} ") for line in lines[4 : 4 + len(HOSTILE_IDS)])
    longest_id = max(len(shown_id(s)) for s in HOSTILE_IDS)  # ids are shown whole
    assert all(len(line) < 200 + MAX_REASON_CHARS + longest_id for line in lines)
