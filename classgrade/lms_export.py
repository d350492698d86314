"""The LMS round trip: grade-import files and bulk feedback uploads for Canvas and Moodle.

Grades leave in the file each LMS documents for importing them:

- **Canvas**, the gradebook CSV (Grades > Import): the columns ``Student, ID, SIS User ID,
  SIS Login ID, Section``, then one column per assignment named ``Name (id)`` (``Name`` alone
  when the Canvas id is not given: Canvas then creates the assignment), a second row
  ``Points Possible``, then one row per learner. Canvas matches rows on ``ID``, its user id,
  which the file names of its submission download carry and :data:`REGEXPS` reads as the
  nbgrader student id.
- **Moodle**, the gradebook's CSV import (Grades > Import > CSV file): one identifier column
  (``Email address`` or ``ID number``, mapped to the user field of that name on import) and one
  column per grade item, named after the assignment. Moodle's submission download names each
  learner by a participant number, not a user field, so the e-mail address comes from the
  assignment's grading worksheet (``--roster``) or from the gradebook's students.

A score is exported only for a graded submission (the late penalty already taken off, as
``nbgrader export`` does). A failed, unfinished or missing submission leaves its cell empty
and is listed with its reason: never a 0.

Feedback leaves as a zip in the layout each LMS's bulk feedback upload reads back, named after
the LMS's own submission download (the archives in ``downloaded/<assignment>/archive/``):

- **Canvas**, *Upload Submission Comments* (Submissions > Upload): a flat zip; Canvas reads
  each file name's first two all-digit parts, separated by ``_``, as the learner's user id and
  the id of the submitted file, which is why each feedback file keeps the download's prefix:
  ``smithjane_101_9001_lstm_feedback.html``.
- **Moodle**, *Upload multiple feedback files in a zip*: one folder per learner, named as in the
  download ``Full Name_<participant>_assignsubmission_file_``, holding the feedback file.
"""

from __future__ import annotations

import argparse
import csv
import posixpath
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import FileNameCollectorPlugin

from .grade_outcome import GRADED, GRADED_ELSEWHERE, PENDING, clean_text, csv_cell
from .report import Course, csv_id, shown_id, status_rows

if TYPE_CHECKING:
    from .runner import ClassGrader

CANVAS = "canvas"
MOODLE = "moodle"
FORMATS = (CANVAS, MOODLE)

CANVAS_IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
POINTS_POSSIBLE = "Points Possible"
MOODLE_IDENTIFIERS = {"email": "Email address", "idnumber": "ID number"}

REGEXPS = {
    # Canvas: <lastfirst>_[LATE_]<user id>_<file id>_<the learner's file name>
    CANVAS: r".*/[^/_]+_(?:LATE_)?(?P<student_id>\d+)_\d+_(?P<file_id>[^/_]+\.ipynb)$",
    # Moodle: <Full Name>_<participant>_assignsubmission_file_/<the learner's file name>
    MOODLE: r".*/[^/]+_(?P<student_id>\d+)_assignsubmission_file_/(?P<file_id>[^/]+\.ipynb)$",
}
"""The expressions ``nbgrader zip_collect`` reads each LMS's download with (the guide's)."""


class LmsExportError(ValueError):
    """The export cannot be written as asked (unknown assignment, unreadable roster ...)."""


@dataclass
class Cell:
    """One learner's result for one assignment, as the LMS file shows it."""

    status: str
    score: float | None = None
    reason: str = ""
    note: str = ""


@dataclass
class ClassGrades:
    """Every learner's exportable result for every assignment, and what was left out."""

    assignments: list[tuple[str, float]]
    students: dict[str, dict]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    def listing(self) -> list[str]:
        """One line per cell left empty (with why) or carrying a note (a late penalty)."""
        lines = []
        for (assignment, student), cell in sorted(self.cells.items()):
            if cell.score is None:
                why = cell.reason or cell.status
                lines.append(
                    f"{shown_id(assignment)} {shown_id(student)}: left empty ({clean_text(why)})"
                )
            elif cell.note:
                lines.append(f"{shown_id(assignment)} {shown_id(student)}: {cell.note}")
        return lines


def class_grades(grader: Course, assignments: list[str] | None = None) -> ClassGrades:
    """What the gradebook and the run journal hold for the export."""
    rows = {(r["assignment"], r["student"]): r for r in status_rows(grader)}
    with Gradebook(grader.db_url, grader.coursedir.course_id) as gb:
        known = {a.name: float(a.max_score) for a in gb.assignments}
        wanted = assignments or sorted(known)
        unknown = [a for a in wanted if a not in known]
        if unknown:
            raise LmsExportError(
                f"unknown assignment(s) {', '.join(map(shown_id, unknown))}; the gradebook has "
                f"{', '.join(map(shown_id, sorted(known))) or 'none'}"
            )
        students = {
            s.id: {
                "first_name": s.first_name or "",
                "last_name": s.last_name or "",
                "email": s.email or "",
                "lms_user_id": s.lms_user_id or "",
            }
            for s in gb.students
        }
        grades = ClassGrades([(a, known[a]) for a in wanted], students)
        for assignment in wanted:
            for student in sorted(students):
                row = rows.get((assignment, student), {})
                status = row.get("status", "")
                if status not in (GRADED, GRADED_ELSEWHERE):
                    reason = row.get("reason", "")
                    if status == PENDING:
                        reason = reason or "grading did not finish"
                    grades.cells[(assignment, student)] = Cell(status or "no result", None, reason)
                    continue
                try:
                    submission = gb.find_submission(assignment, student)
                except MissingEntry:
                    grades.cells[(assignment, student)] = Cell("not submitted", None, "")
                    continue
                penalty = float(submission.late_submission_penalty or 0.0)
                score = max(0.0, float(submission.score) - penalty)
                note = ""
                if penalty:
                    extension = extension_seconds(grader, assignment, student)
                    late = max(0.0, submission.total_seconds_late - extension)
                    after = f" after a {extension / 3600:g} h extension" if extension else ""
                    note = (
                        f"late by {late / 3600:.1f} h{after}: "
                        f"{float(submission.score):g} - {penalty:g} late penalty = {score:g}"
                    )
                grades.cells[(assignment, student)] = Cell(status, score, note=note)
    return grades


def extension_seconds(grader: Course, assignment: str, student: str) -> float:
    """The learner's extension under the course's late-work policy (``gradecheck.late_work``)."""
    config = getattr(grader, "config", None)
    if config is None:
        return 0.0
    try:
        from gradecheck.late_work import LatePenalty
    except ImportError:  # a course without the policy: nbgrader's extensions only
        return 0.0
    return LatePenalty(config=config).extension_seconds(assignment, student)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _display_name(info: dict, student: str) -> str:
    last, first = info.get("last_name", ""), info.get("first_name", "")
    if last and first:
        return f"{last}, {first}"
    return last or first or student


def write_canvas(grades: ClassGrades, out: TextIO, canvas_ids: dict[str, str]) -> None:
    """The Canvas gradebook import CSV (see the module's docstring)."""
    writer = csv.writer(out)
    headers = [
        f"{name} ({canvas_ids[name]})" if name in canvas_ids else name
        for name, _ in grades.assignments
    ]
    writer.writerow(CANVAS_IDENTITY + [csv_cell(h) for h in headers])
    writer.writerow([POINTS_POSSIBLE, "", "", "", ""] + [_number(m) for _, m in grades.assignments])
    for student, info in sorted(grades.students.items()):
        canvas_id = info.get("lms_user_id") or student
        writer.writerow(
            [csv_cell(clean_text(_display_name(info, student), 200)), csv_id(canvas_id), "", "", ""]
            + [_number(grades.cells[(a, student)].score) for a, _ in grades.assignments]
        )


def read_moodle_worksheet(path: Path) -> dict[str, str]:
    """Participant number -> e-mail address, from a Moodle assignment's grading worksheet.

    The worksheet (Assignment > View all submissions > Download grading worksheet) has the
    columns ``Identifier`` (``Participant 1234``) and ``Email address``.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LmsExportError(f"cannot read the roster {path}: {exc}") from None
    if not rows or "Identifier" not in rows[0] or "Email address" not in rows[0]:
        raise LmsExportError(
            f"{path} is not a Moodle grading worksheet (no 'Identifier' and 'Email address' "
            "columns)"
        )
    found = {}
    for row in rows:
        match = re.search(r"(\d+)\s*$", row["Identifier"] or "")
        if match and row["Email address"]:
            found[match.group(1)] = row["Email address"].strip()
    return found


def write_moodle(
    grades: ClassGrades, out: TextIO, identifier: str, roster: dict[str, str] | None = None
) -> list[str]:
    """The Moodle gradebook import CSV; the learners left out for want of an identifier."""
    writer = csv.writer(out)
    writer.writerow(
        [MOODLE_IDENTIFIERS[identifier]] + [csv_cell(name) for name, _ in grades.assignments]
    )
    left_out = []
    for student, info in sorted(grades.students.items()):
        if identifier == "email":
            key = (roster or {}).get(student) or info.get("email", "")
        else:
            key = student
        if not key:
            left_out.append(
                f"{shown_id(student)}: not exported (no e-mail address: give the grading "
                "worksheet with --roster, or import the students with `nbgrader db student "
                "import`)"
            )
            continue
        writer.writerow(
            [csv_id(key)]
            + [_number(grades.cells[(a, student)].score) for a, _ in grades.assignments]
        )
    return left_out


def export_lms(
    grader: Course,
    fmt: str,
    path: Path | None,
    out: TextIO,
    assignments: list[str] | None = None,
    canvas_ids: dict[str, str] | None = None,
    identifier: str = "email",
    roster: Path | None = None,
) -> list[str]:
    """Write the LMS's grade-import file to ``path`` (or ``out``); the lines to list."""
    if fmt not in FORMATS:
        raise LmsExportError(f"unknown LMS format {fmt!r}: choose one of {', '.join(FORMATS)}")
    grades = class_grades(grader, assignments)
    names = {a for a, _ in grades.assignments}
    stray = sorted(set(canvas_ids or {}) - names)
    if stray:
        raise LmsExportError(f"--canvas-id names no exported assignment: {', '.join(stray)}")
    handle = open(path, "w", newline="", encoding="utf-8") if path else out
    try:
        if fmt == CANVAS:
            write_canvas(grades, handle, canvas_ids or {})
            extra: list[str] = []
        else:
            mapping = read_moodle_worksheet(roster) if roster else None
            extra = write_moodle(grades, handle, identifier, mapping)
    finally:
        if path:
            handle.close()
    return grades.listing() + extra


# -- feedback bundles -------------------------------------------------------------------------


def _canvas_prefix(name: str) -> str | None:
    """``lastfirst_[LATE_]<user id>_<file id>``: the part of a Canvas file name it matches on."""
    parts = posixpath.basename(name).split("_")
    digits = [i for i, p in enumerate(parts) if p.isdigit()]
    return "_".join(parts[: digits[1] + 1]) if len(digits) >= 2 else None


def _moodle_folder(name: str) -> str | None:
    folder = posixpath.dirname(name).split("/")[-1] if "/" in name else ""
    return folder if re.fullmatch(r"[^/]+_\d+_assignsubmission_file_", folder) else None


def download_names(archives: list[Path], regexp: str, fmt: str) -> dict[str, str]:
    """Student id -> what the LMS named that learner in its download.

    The names of the archives' members, read with the expression ``nbgrader zip_collect`` used;
    the Canvas file-name prefix, or the Moodle folder.
    """
    collector = FileNameCollectorPlugin(named_regexp=regexp)
    found: dict[str, str] = {}
    for archive in archives:
        try:
            with zipfile.ZipFile(archive) as z:
                members = [m for m in z.namelist() if not m.endswith("/")]
        except (OSError, zipfile.BadZipFile) as exc:
            raise LmsExportError(f"cannot read the download {archive}: {exc}") from None
        for member in members:
            info = collector.collect("/" + member)
            if not info:
                continue
            lms_name = _canvas_prefix(member) if fmt == CANVAS else _moodle_folder(member)
            if lms_name is not None:
                found[info["student_id"]] = lms_name
    return found


def feedback_bundle(
    grader: Course,
    feedback_root: Path,
    assignment: str,
    fmt: str,
    archives: list[Path],
    dest: Path,
    regexp: str | None = None,
) -> tuple[int, list[str]]:
    """Zip each learner's feedback as the LMS's bulk upload reads it; (files, lines to list).

    Only learners whose submission is graded get their feedback (``feedback/<student>/
    <assignment>/<assignment>.html``, from ``nbgrader generate_feedback``): a failed one's
    older feedback would describe a submission that no longer counts.
    """
    if fmt not in FORMATS:
        raise LmsExportError(f"unknown LMS format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if not archives:
        raise LmsExportError(
            f"no LMS download for {assignment}: put it in downloaded/{assignment}/archive/ "
            "(as for `nbgrader zip_collect`) or name it with --download"
        )
    names = download_names(archives, regexp or REGEXPS[fmt], fmt)
    grades = class_grades(grader, [assignment])
    lines: list[str] = []
    written = 0
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for student, lms_name in sorted(names.items()):
            cell = grades.cells.get((assignment, student))
            html = feedback_root / student / assignment / f"{assignment}.html"
            if cell is None or cell.score is None:
                why = "not in the gradebook" if cell is None else cell.reason or cell.status
                lines.append(f"{shown_id(student)}: no feedback ({clean_text(why)})")
                continue
            if not html.is_file():
                lines.append(
                    f"{shown_id(student)}: no feedback file (run `nbgrader generate_feedback "
                    f"{assignment}`)"
                )
                continue
            stem = f"{assignment}_feedback.html"
            arcname = f"{lms_name}_{stem}" if fmt == CANVAS else f"{lms_name}/{stem}"
            z.write(html, arcname)
            written += 1
        graded_elsewhere = sorted(
            s for (a, s), c in grades.cells.items() if c.score is not None and s not in names
        )
        for student in graded_elsewhere:
            lines.append(f"{shown_id(student)}: graded, but not in the LMS download (left out)")
    tmp.replace(dest)
    return written, lines


def lms_archives(course_dir: Path, assignment: str) -> list[Path]:
    """The LMS downloads ``nbgrader zip_collect`` reads: ``downloaded/<a>/archive/*.zip``."""
    folder = course_dir / "downloaded" / assignment / "archive"
    return sorted(p for p in folder.glob("*.zip") if p.is_file()) if folder.is_dir() else []


# -- the command line (``export --format``, ``feedback-bundle``) ------------------------------


def _canvas_id(text: str) -> tuple[str, str]:
    name, sep, number = text.rpartition("=")
    if not sep or not name or not number.isdigit():
        raise argparse.ArgumentTypeError(f"expected ASSIGNMENT=CANVAS_ID, e.g. lstm=1234: {text}")
    return name, number


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """``export``'s LMS options."""
    p.add_argument(
        "--format",
        choices=("csv", *FORMATS),
        default="csv",
        help="csv: classgrade's own, with a status column; canvas|moodle: the LMS's import file",
    )
    p.add_argument("--assignment", action="append", dest="assignments", help="only this one")
    p.add_argument(
        "--canvas-id",
        action="append",
        type=_canvas_id,
        default=[],
        metavar="ASSIGNMENT=ID",
        help="the Canvas id of an assignment (its column is then 'name (id)')",
    )
    p.add_argument(
        "--identifier",
        choices=sorted(MOODLE_IDENTIFIERS),
        default="email",
        help="Moodle: the identifier column (email: the learner's e-mail; idnumber: the "
        "student id)",
    )
    p.add_argument("--roster", type=Path, help="Moodle: the assignment's grading worksheet (CSV)")


def add_bundle_arguments(p: argparse.ArgumentParser) -> None:
    """``feedback-bundle``'s arguments."""
    p.add_argument("assignment", help="the assignment whose feedback to bundle")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--to", type=Path, required=True, help="the zip to write")
    p.add_argument(
        "--download",
        type=Path,
        action="append",
        help="the LMS's submission download (default: downloaded/<assignment>/archive/*.zip)",
    )
    p.add_argument(
        "--regexp",
        help="the named_regexp given to `nbgrader zip_collect` (default: the guide's one for "
        "the format)",
    )


def export_command(grader: ClassGrader, args: argparse.Namespace) -> int:
    """``export --format canvas|moodle``: the file, and what was left empty on stderr."""
    try:
        lines = export_lms(
            grader,
            args.format,
            args.to,
            sys.stdout,
            assignments=args.assignments,
            canvas_ids=dict(args.canvas_id),
            identifier=args.identifier,
            roster=args.roster,
        )
    except LmsExportError as exc:
        print(f"classgrade: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line, file=sys.stderr)
    return 0


def bundle_command(grader: ClassGrader, args: argparse.Namespace) -> int:
    """``feedback-bundle``: the zip, and who has no feedback in it on stderr."""
    archives = args.download or lms_archives(grader.course_dir, args.assignment)
    cd = grader.coursedir
    feedback_root = Path(cd.format_path(cd.feedback_directory, ".", ".")).resolve()
    try:
        written, lines = feedback_bundle(
            grader, feedback_root, args.assignment, args.format, archives, args.to, args.regexp
        )
    except LmsExportError as exc:
        print(f"classgrade: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line, file=sys.stderr)
    print(f"{written} feedback file(s) in {args.to}", file=sys.stderr)
    return 0
