"""Command line: ``python -m classgrade <command>`` (grade, status, export, watch, ...)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sqlalchemy.exc import OperationalError

from . import lms_export, watch
from .grading_options import add_grading_arguments, settings_from_arguments
from .job_queue import redact
from .report import Progress, export_csv, format_status, format_summary, status_rows
from .runner import ClassGrader, GradingSetupError, Settings
from .sandbox import Limits, Sandbox, SandboxUnavailable, self_test


def _add_course(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--course-dir",
        type=Path,
        default=Path.cwd(),
        help="the course folder with nbgrader_config.py and the gradebook (default: here)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser, one subcommand each."""
    parser = argparse.ArgumentParser(
        prog="python -m classgrade",
        description="Autograde a whole class with nbgrader, each notebook in a sandbox.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade one, several or all assignments")
    g.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    _add_course(g)
    g.add_argument("--student", action="append", dest="students", help="only this learner")
    g.add_argument("--force", action="store_true", help="regrade unchanged submissions too")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    add_grading_arguments(g)

    s = sub.add_parser("status", help="every learner's state, failures with their reason")
    _add_course(s)
    s.add_argument("--failed", action="store_true", help="only failed or unfinished ones")

    e = sub.add_parser("export", help="grades as CSV with an explicit status column")
    _add_course(e)
    e.add_argument("--to", type=Path, help="output file (default: standard output)")
    lms_export.add_export_arguments(e)

    f = sub.add_parser("feedback-bundle", help="feedback as a zip for the LMS's bulk upload")
    _add_course(f)
    lms_export.add_bundle_arguments(f)

    w = sub.add_parser("worker", help="grade notebooks from the queue of `grade --db`")
    w.add_argument("--db", required=True, help="the PostgreSQL database `grade --db` names")
    w.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="notebooks at a time")
    w.add_argument(
        "--lease-seconds",
        type=float,
        default=Settings.lease_seconds,
        help="the lease `grade --lease-seconds` uses (heartbeats every third of it)",
    )

    a = sub.add_parser("watch", help="grade submissions as they arrive, release feedback")
    _add_course(a)
    watch.add_arguments(a)

    t = sub.add_parser("selftest", help="check that the sandbox works on this machine")
    _add_course(t)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` asks for; its exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "grade":
            return _grade(args)
        if args.command == "status":
            grader = ClassGrader(Settings(course_dir=args.course_dir))
            table = format_status(status_rows(grader), failed_only=args.failed)
            if table:
                print(table)
            return 0
        if args.command == "export" and args.format != "csv":
            return lms_export.export_command(
                ClassGrader(Settings(course_dir=args.course_dir)), args
            )
        if args.command == "watch":
            return watch.command(args)
        if args.command == "feedback-bundle":
            return lms_export.bundle_command(
                ClassGrader(Settings(course_dir=args.course_dir)), args
            )
        if args.command == "export":
            grader = ClassGrader(Settings(course_dir=args.course_dir))
            failed = export_csv(grader, args.to)
            if failed:
                print(f"{failed} submission(s) failed: see the status column", file=sys.stderr)
            return 0
        if args.command == "worker":
            from .worker import run_worker

            run_worker(args.db, args.processes, args.lease_seconds)
            return 0
        if args.command == "selftest":
            self_test(Sandbox(Limits()))
            print("The sandbox works: no network, no course files, no home directory, not root.")
            return 0
    except SandboxUnavailable as exc:
        print(f"classgrade: {exc}", file=sys.stderr)
        print(
            "classgrade: refusing to run learners' code without a sandbox; pass --no-sandbox "
            "to do it anyway.",
            file=sys.stderr,
        )
        return 3
    except GradingSetupError as exc:
        print(f"classgrade: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:  # the gradebook's database cannot be reached
        reason = redact(str(exc.orig or exc).strip().splitlines()[0])
        print(f"classgrade: cannot open the gradebook: {reason}", file=sys.stderr)
        return 2
    return 1


def _grade(args: argparse.Namespace) -> int:
    settings = settings_from_arguments(
        args,
        students=args.students,
        force=args.force,
        progress=None if args.quiet else Progress(),
    )
    grader = ClassGrader(settings)
    summary = grader.run()
    print(format_summary(summary, grader))
    return 1 if summary.failed else 0
