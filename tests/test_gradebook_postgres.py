"""nbgrader's gradebook in a real PostgreSQL server, as a course with several TAs would keep it.

nbgrader's own CI tests only SQLite. Here the course's ``db_url`` names a PostgreSQL database
(``postgresql+psycopg://``) and nbgrader's commands, formgrader's gradebook queries, alembic's
upgrade and classgrade's ``grade``/``status``/``export`` all run against it.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import psycopg
import pytest
from course import Course, correct, grade_points, partial, tool_env
from nbgrader.api import Gradebook
from nbgrader.apps.api import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from postgres_server import postgres  # noqa: F401 (the session fixture)
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

pytestmark = [pytest.mark.slow]

A = "rnn"
COURSE_ID = "rnn-course"
FULL = sum(grade_points(A).values())


def use_database(course: Course, url: str) -> None:
    """Point the course's nbgrader configuration at ``url`` (its last word on ``db_url``)."""
    config = course.path / "nbgrader_config.py"
    config.write_text(config.read_text() + f"\nc.CourseDirectory.db_url = {url!r}\n")


def course_api(course: Course) -> NbGraderAPI:
    """nbgrader's API object for the course: formgrader's handlers call exactly this."""
    cfg = Config()
    cfg.merge(PyFileConfigLoader("nbgrader_config.py", str(course.path)).load_config())
    cfg.CourseDirectory.root = str(course.path)
    return NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory, postgres):  # noqa: F811 (pytest fixture)
    """A course whose gradebook is in PostgreSQL, with two learners graded by nbgrader."""
    database = postgres.new_database()
    course = Course(tmp_path_factory.mktemp("pg") / "course")
    created = Course.create(course.path, (A,))
    use_database(created, postgres.url(database, "postgresql+psycopg"))
    created.nbgrader("generate_assignment", A, "--force")
    created.submit("ann", A, correct(created, A))
    created.submit("bob", A, partial(created, A, keep=1))  # half marks or so
    created.nbgrader("autograde", A, "--force")
    return created, postgres.url(database, "postgresql+psycopg"), postgres.url(database)


def test_generate_assignment_writes_the_gradebook_in_postgres(graded_course):
    course, _url, plain = graded_course
    with psycopg.connect(plain) as conn:
        tables = {r[0] for r in conn.execute("select tablename from pg_tables")}
        cells = conn.execute("select count(*) from grade_cells").fetchone()[0]
    assert {"assignment", "grade_cells", "submitted_assignment", "alembic_version"} <= tables
    assert cells == len(grade_points(A))
    assert not (course.path / "gradebook.db").exists()


def test_autograde_records_scores_in_postgres(graded_course):
    _course, url, _plain = graded_course
    with Gradebook(url, COURSE_ID) as gb:
        ann = gb.find_submission(A, "ann")
        bob = gb.find_submission(A, "bob")
        assert ann.score == FULL
        assert 0 < bob.score < FULL
        assert gb.average_assignment_score(A) == pytest.approx((ann.score + bob.score) / 2)


def test_formgraders_gradebook_queries_read_postgres(graded_course):
    course, _url, _plain = graded_course
    api = course_api(course)
    assignments = {a["name"]: a for a in api.get_assignments()}
    assert assignments[A]["num_submissions"] == 2
    submissions = {s["student"]: s for s in api.get_submissions(A)}
    assert submissions["ann"]["score"] == FULL
    assert submissions["bob"]["score"] < FULL
    notebooks = {s["student"]: s for s in api.get_notebook_submissions(A, A)}
    assert notebooks["ann"]["score"] == FULL
    assert {s["id"] for s in api.get_students()} == {"ann", "bob"}
    ids = api.get_notebook_submission_indices(A, A)
    assert len(ids) == 2


def test_nbgrader_export_reads_postgres(graded_course):
    course, _url, _plain = graded_course
    out = course.path / "grades.csv"
    course.nbgrader("export", "--to", str(out))
    with out.open() as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert float(rows["ann"]["raw_score"]) == FULL
    assert float(rows["bob"]["raw_score"]) < FULL


def test_alembic_upgrade_runs_on_postgres(graded_course, postgres):  # noqa: F811 (fixture)
    """``nbgrader db upgrade``: a no-op at the newest revision; the last migration runs.

    nbgrader's newest migration (e43177bfe90b) cannot be undone by alembic (its downgrade
    calls ``drop_column`` wrongly), so the older gradebook is made by hand: the course table and
    the assignment's course column dropped, the revision set back.
    """
    course, url, _plain = graded_course
    course.nbgrader("db", "upgrade")
    with Gradebook(url, COURSE_ID) as gb:  # the grades are untouched
        assert gb.find_submission(A, "ann").score == FULL

    database = postgres.new_database()
    old_url, old_plain = postgres.url(database, "postgresql+psycopg"), postgres.url(database)
    Gradebook(old_url, COURSE_ID).close()
    with psycopg.connect(old_plain) as conn:
        conn.execute("alter table assignment drop column course_id cascade")
        conn.execute("drop table course cascade")
        conn.execute("update alembic_version set version_num = '282d30a0218e'")
    from nbgrader.dbutil import _temp_alembic_ini

    with _temp_alembic_ini(old_url) as ini:
        upgraded = subprocess.run(
            ["alembic", "-c", ini, "upgrade", "head"],
            env=tool_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert upgraded.returncode == 0, upgraded.stderr[-3000:]
    with psycopg.connect(old_plain) as conn:
        query = "select column_name from information_schema.columns where table_name = %s"
        assert "course_id" in {r[0] for r in conn.execute(query, ("assignment",))}
        revision = conn.execute("select version_num from alembic_version").fetchone()[0]
    assert revision == "e43177bfe90b"


def test_classgrade_grades_and_reports_on_a_postgres_gradebook(graded_course):
    course, url, _plain = graded_course
    run = course.classgrade("grade", "--quiet", "--workers", "1")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "Graded 2" in run.stdout
    status = course.classgrade("status")
    assert status.returncode == 0
    assert "ann" in status.stdout
    assert "graded" in status.stdout
    export = course.classgrade("export")
    rows = {r["student"]: r for r in csv.DictReader(io.StringIO(export.stdout))}
    assert rows.keys() == {"ann", "bob"}
    assert {r["status"] for r in rows.values()} == {"graded"}
    assert float(rows["ann"]["score"]) == FULL
    with Gradebook(url, COURSE_ID) as gb:
        assert gb.find_submission(A, "ann").score == FULL
        bob = gb.find_submission(A, "bob").score
    assert 0 < bob < FULL
    assert url.split("@")[0].split(":")[-1] not in run.stdout + run.stderr  # no password shown


def test_a_dead_database_is_a_clear_error(tmp_path, postgres):  # noqa: F811 (pytest fixture)
    """A gradebook address nobody answers at: a one-line reason, no traceback, no password."""
    course = Course.create(tmp_path / "course", (A,))
    dead = postgres.url("nowhere", "postgresql+psycopg").replace(
        f":{postgres.port}/", f":{_closed_port()}/"
    )
    use_database(course, dead)
    run = subprocess.run(
        [sys.executable, "-m", "classgrade", "status", "--course-dir", str(course.path)],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "gradebook" in run.stderr
    assert postgres.password not in run.stderr + run.stdout


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again once this returns: nobody listens there


def test_pg_dump_and_pg_restore_keep_the_grades(graded_course, postgres, tmp_path):  # noqa: F811
    """The instructors' guide's backup: ``pg_dump`` the gradebook, ``pg_restore`` it elsewhere."""
    _course, url, plain = graded_course
    dump = tmp_path / "gradebook.dump"
    env = {**os.environ, "PGPASSWORD": postgres.password}
    no_password = plain.replace(f":{postgres.password}@", "@")
    subprocess.run(
        [str(postgres.bindir / "pg_dump"), "--format=custom", f"--file={dump}", no_password],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    restored = postgres.new_database()
    subprocess.run(
        [
            str(postgres.bindir / "pg_restore"),
            "--no-owner",
            f"--dbname={postgres.url(restored).replace(f':{postgres.password}@', '@')}",
            str(dump),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    with (
        Gradebook(url, COURSE_ID) as before,
        Gradebook(postgres.url(restored, "postgresql+psycopg"), COURSE_ID) as after,
    ):
        for student in ("ann", "bob"):
            assert (
                after.find_submission(A, student).score == before.find_submission(A, student).score
            )
