"""The LMS round trip on a fabricated class: from each LMS's submission download (zip collect)
to the files each LMS imports (grades) and reads back in bulk (feedback).

The downloads are shaped as Canvas and Moodle name them; the checks read the written files the
way each LMS says it reads them: Canvas matches a grade row on ``ID`` and a feedback file on the
first two all-digit ``_``-separated parts of its name (user id, submitted file id); Moodle
matches a grade row on the mapped identifier column and a feedback file on the participant
number of its folder ``Full Name_<participant>_assignsubmission_file_``.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from course import (
    Course,
    answer_of_grade_cells,
    correct,
    grade_points,
    partial,
    solution_answers,
)

from classgrade.lms_export import REGEXPS, _canvas_prefix

pytestmark = pytest.mark.slow

A = "rnn"
CANVAS_DOWNLOAD = {  # Canvas user id -> (its download name, what the learner handed in)
    "101": ("lovelaceada_101_9001_rnn.ipynb", "correct"),
    "102": ("turingalan_LATE_102_9002_rnn.ipynb", "partial"),
    "103": ("hopperg_103_9003_rnn.ipynb", "broken"),
}
MOODLE_DOWNLOAD = {  # Moodle participant number -> (folder in its download, handed in)
    "5551": ("Emmy Noether_5551_assignsubmission_file_", "correct"),
    "5552": ("Kurt Godel_5552_assignsubmission_file_", "broken"),
}
NOT_SUBMITTED = "104"  # in the gradebook, handed in nothing


def _notebook(course: Course, kind: str) -> str:
    if kind == "broken":
        return '{"cells": [ this is not JSON'
    nb = correct(course, A) if kind == "correct" else partial(course, A, keep=1)
    return json.dumps(nb)


def _downloads(course: Course):
    archive = course.path / "downloaded" / A / "archive"
    archive.mkdir(parents=True)
    canvas, moodle = archive / "submissions.zip", archive / "rnn-moodle.zip"
    with zipfile.ZipFile(canvas, "w") as z:
        for name, kind in CANVAS_DOWNLOAD.values():
            z.writestr(name, _notebook(course, kind))
    with zipfile.ZipFile(moodle, "w") as z:
        for folder, kind in MOODLE_DOWNLOAD.values():
            z.writestr(f"{folder}/rnn.ipynb", _notebook(course, kind))
    return canvas, moodle


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_lms_round_trip(tmp_path):
    course = Course.create(tmp_path / "course", assignments=(A,), release=True)
    canvas_zip, moodle_zip = _downloads(course)
    for fmt in ("canvas", "moodle"):
        # A class on one LMS runs this once; both run here (--force: extract again).
        regexp = f"--FileNameCollectorPlugin.named_regexp={REGEXPS[fmt]}"
        course.nbgrader("zip_collect", A, regexp, "--force")
    submitted = sorted(p.name for p in (course.path / "submitted").iterdir())
    assert submitted == sorted([*CANVAS_DOWNLOAD, *MOODLE_DOWNLOAD])
    course.nbgrader("db", "student", "add", NOT_SUBMITTED, "--first-name=Grace")
    graded = course.classgrade("grade", A, "--quiet")
    assert graded.returncode == 1, graded.stdout + graded.stderr  # the two broken ones
    course.nbgrader("generate_feedback", A)

    # The scores expected: all points, or those of the grade cells the first answer owns.
    first_answer = next(iter(solution_answers(A)))
    owner = answer_of_grade_cells(A)
    full = f"{sum(grade_points(A).values()):g}"
    half = f"{sum(p for g, p in grade_points(A).items() if owner[g] == first_answer):g}"

    # Canvas: identity columns, "name (id)", Points Possible, one row per learner.
    done = course.classgrade("export", "--format", "canvas", "--canvas-id", f"{A}=4242")
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{A} (4242)"]
    assert rows[1] == ["Points Possible", "", "", "", "", full]
    scores = {row[1]: row[5] for row in rows[2:]}
    assert scores == {
        "101": full,
        "102": half,
        "103": "",
        NOT_SUBMITTED: "",
        "5551": full,
        "5552": "",
    }
    for student in ("103", NOT_SUBMITTED, "5552"):
        assert f"{A} {student}: left empty (" in done.stderr, done.stderr
    assert "103: left empty (rnn.ipynb" in done.stderr  # the failure's own reason

    # Moodle: the identifier from the assignment's grading worksheet, a column per grade item.
    worksheet = tmp_path / "worksheet.csv"
    worksheet.write_text(
        "Identifier,Full name,Email address,Status,Grade,Maximum Grade\n"
        "Participant 5551,Emmy Noether,emmy@example.org,Submitted,,7\n"
        "Participant 5552,Kurt Godel,kurt@example.org,Submitted,,7\n",
        encoding="utf-8",
    )
    done = course.classgrade(
        "export", "--format", "moodle", "--assignment", A, "--roster", str(worksheet)
    )
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert rows[0] == ["Email address", A]
    assert dict(rows[1:]) == {"emmy@example.org": full, "kurt@example.org": ""}
    assert "5552: left empty" in done.stderr
    assert "101: not exported (no e-mail address" in done.stderr  # Canvas's learners

    # Canvas feedback: flat, each name keeping the download's user id and file id.
    bundle = tmp_path / "canvas-feedback.zip"
    done = course.classgrade(
        "feedback-bundle",
        A,
        "--format",
        "canvas",
        "--download",
        str(canvas_zip),
        "--to",
        str(bundle),
    )
    assert done.returncode == 0, done.stderr
    names = zipfile.ZipFile(bundle).namelist()
    expected = {
        s: _canvas_prefix(name) for s, (name, kind) in CANVAS_DOWNLOAD.items() if kind != "broken"
    }
    assert sorted(names) == sorted(f"{prefix}_{A}_feedback.html" for prefix in expected.values())
    for name in names:
        user_id, file_id = [p for p in name.split("_") if p.isdigit()][:2]
        download_name = CANVAS_DOWNLOAD[user_id][0]
        assert file_id in download_name.split("_")
        html = zipfile.ZipFile(bundle).read(name)
        assert html == course.feedback(user_id, A).read_bytes()
    assert "103: no feedback (rnn.ipynb" in done.stderr

    # Moodle feedback: one folder per learner, named as in the download.
    bundle = tmp_path / "moodle-feedback.zip"
    done = course.classgrade(
        "feedback-bundle",
        A,
        "--format",
        "moodle",
        "--download",
        str(moodle_zip),
        "--to",
        str(bundle),
    )
    assert done.returncode == 0, done.stderr
    names = zipfile.ZipFile(bundle).namelist()
    assert names == [f"{MOODLE_DOWNLOAD['5551'][0]}/{A}_feedback.html"]
    # Moodle splits "<path>/<file>" at its first four "_": name, participant, plugin, "file".
    fullname, participant, kind, plugin, rest = ("/" + names[0]).split("_", 4)
    assert (fullname, participant, kind, plugin) == (
        "/Emmy Noether",
        "5551",
        "assignsubmission",
        "file",
    )
    assert rest == f"/{A}_feedback.html"
    assert "5552: no feedback" in done.stderr
    assert "101: graded, but not in the LMS download" in done.stderr
