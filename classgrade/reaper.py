"""Nothing of a grading run outlives it: what each run starts is recorded, and reaped later.

While it runs, a notebook's sandbox ends with the process that grades it (the sandbox's
lifeline, see ``_shim``), and that process ends with the run (``notebook_job``). Should anything be
left all the same (a machine that lost power, a bug), the next run finds it by the records kept
here: every run has a token (its pid and start time, so a reused pid is not mistaken for it), its
scratch folders and cgroups carry the token in their names, and each sandbox's process is recorded,
with its start time, in its scratch folder. A token whose process no longer exists is stale: its
processes are killed, its groups and folders removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import psutil

from . import cgroups

SCRATCH_PREFIX = "classgrade-run-"
SANDBOX_RECORD = "sandbox.json"


def _token(process: psutil.Process) -> str:
    return f"{process.pid}.{int(process.create_time() * 100)}"


def run_token() -> str:
    """The token of this process."""
    return _token(psutil.Process())


def is_stale(token: str) -> bool:
    """Whether the run of ``token`` has ended (its pid gone, or now another process's)."""
    pid = token.partition(".")[0]
    if not pid.isdigit():
        return False  # not ours to judge
    try:
        return _token(psutil.Process(int(pid))) != token
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def scratch_root(token: str) -> Path:
    """The scratch folder of the run whose token is ``token``."""
    return Path(tempfile.gettempdir()) / f"{SCRATCH_PREFIX}{token}"


def job_cgroup_name(scratch_root: Path, index: int) -> str:
    """The cgroup of job ``index`` of the run whose scratch folder is ``scratch_root``."""
    return f"{cgroups.PREFIX}{Path(scratch_root).name.removeprefix(SCRATCH_PREFIX)}-{index}"


def record_sandbox(scratch: Path, pid: int) -> None:
    """Note the sandbox's first host-side process, so that a later run can end it."""
    with contextlib.suppress(psutil.Error, OSError):
        started = psutil.Process(pid).create_time()
        (scratch / SANDBOX_RECORD).write_text(json.dumps({"pid": pid, "started": started}))


def kill_recorded(scratch: Path) -> None:
    """Kill the sandbox recorded in ``scratch`` with its descendants, if it still runs."""
    try:
        record = json.loads((scratch / SANDBOX_RECORD).read_text())
        process = psutil.Process(int(record["pid"]))
        if abs(process.create_time() - float(record["started"])) > 0.01:
            return  # the pid was reused by another process
        tree = [process, *process.children(recursive=True)]
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return
    for p in tree:
        with contextlib.suppress(psutil.Error):
            p.kill()


def kill_naming(folder: Path) -> None:
    """Kill, with their descendants, this user's processes whose command line names ``folder``.

    A sandbox's bubblewrap names its scratch folder (the folder it binds): this finds a sandbox
    whose grading process was killed before it could record it (``record_sandbox`` follows the
    start of bubblewrap), where no cgroup holds it either.
    """
    inside = str(folder).rstrip("/") + "/"
    for process in psutil.process_iter(["cmdline", "uids"]):
        cmdline, uids = process.info["cmdline"], process.info["uids"]
        if not cmdline or uids is None or uids.effective != os.geteuid():
            continue
        if any(arg == str(folder) or arg.startswith(inside) for arg in cmdline):
            with contextlib.suppress(psutil.Error):
                tree = [process, *process.children(recursive=True)]
                for p in tree:
                    with contextlib.suppress(psutil.Error):
                        p.kill()


def reap_stale(parents: cgroups.CgroupParents | None) -> int:
    """End and remove everything left by grading runs that no longer exist; return a count."""
    reaped = cgroups.remove_stale(parents, is_stale)
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        if folder.is_symlink() or not folder.is_dir():
            continue
        if folder.stat().st_uid != os.geteuid() or not is_stale(folder.name[len(SCRATCH_PREFIX) :]):
            continue
        for job in folder.iterdir():
            if job.is_dir() and not job.is_symlink():
                kill_recorded(job)
        kill_naming(folder)
        shutil.rmtree(folder, ignore_errors=True)
        reaped += 1
    return reaped
