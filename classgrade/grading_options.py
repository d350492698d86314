"""The options every grading command shares (``grade`` and ``watch``).

Parallelism, the sandbox, the per-notebook limits and the queue: one definition, so the two
commands cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .runner import Settings
from .sandbox import Limits


def add_grading_arguments(p: argparse.ArgumentParser) -> None:
    """Add the shared grading options to a subcommand's parser."""
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="parallel kernels")
    p.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run learners' code WITHOUT isolation (only where bubblewrap cannot run)",
    )
    defaults = Limits()
    p.add_argument("--memory-mb", type=int, default=defaults.memory_mb)
    p.add_argument("--cpu-seconds", type=int, default=defaults.cpu_seconds)
    p.add_argument("--processes", type=int, default=defaults.processes)
    p.add_argument("--notebook-seconds", type=int, default=defaults.notebook_seconds)
    p.add_argument("--cell-seconds", type=int, default=defaults.cell_seconds)
    p.add_argument(
        "--work-mb",
        type=int,
        default=defaults.work_size_mb,
        help="size of each notebook's working folder (a tmpfs in the sandbox)",
    )
    p.add_argument("--max-notebook-mb", type=float, default=Settings.max_notebook_mb)
    p.add_argument(
        "--db",
        help="grade through the queue in this PostgreSQL database (postgresql://user@host/db; "
        "the password from PGPASSWORD or ~/.pgpass): `classgrade worker`s on any machine "
        "grade the notebooks",
    )
    p.add_argument(
        "--lease-seconds",
        type=float,
        default=Settings.lease_seconds,
        help="with --db: a worker silent this long loses its notebooks to another",
    )


def settings_from_arguments(args: argparse.Namespace, **more: Any) -> Settings:
    """The run's settings from the shared options (and ``more`` of the command's own).

    Warns on standard error when the sandbox is switched off.
    """
    if args.no_sandbox:
        print(
            "classgrade: WARNING: --no-sandbox: learners' code runs with your rights, can read "
            "your files and the network. Resource limits still apply.",
            file=sys.stderr,
        )
    limits = Limits(
        memory_mb=args.memory_mb,
        cpu_seconds=args.cpu_seconds,
        processes=args.processes,
        notebook_seconds=args.notebook_seconds,
        cell_seconds=args.cell_seconds,
        work_size_mb=args.work_mb,
    )
    return Settings(
        course_dir=args.course_dir,
        assignments=args.assignments or None,
        workers=args.workers,
        sandboxed=not args.no_sandbox,
        limits=limits,
        max_notebook_mb=args.max_notebook_mb,
        queue_db=args.db,
        lease_seconds=args.lease_seconds,
        **more,
    )
