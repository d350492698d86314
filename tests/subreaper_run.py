"""Run a command as a child subreaper and report (JSON on stdout) what it left alive.

Being a subreaper (prctl PR_SET_CHILD_SUBREAPER) means that every process the command starts,
however it detaches (new sessions, double forks), is re-parented here when its parent dies, so
what survives the command is found in this process's own tree: no machine-wide process list
is read. With ``--kill-once-kernel-runs``, the whole command (its process group) is SIGKILLed
as soon as one of its descendants is a Jupyter kernel, as a terminal's kill would end it.

Usage: python subreaper_run.py [--kill-once-kernel-runs] [--grace S] OUT ERR -- COMMAND...
The command's stdout and stderr go to the files OUT and ERR. Processes still ending when the
command has ended get ``--grace`` seconds (default 60) before they count as survivors.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import time

import psutil

PR_SET_CHILD_SUBREAPER = 36


def _reap() -> None:
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def _alive() -> list[psutil.Process]:
    _reap()
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            pass
    return found


def _describe(processes: list[psutil.Process]) -> list[dict]:
    """What ``ps -o pid,ppid,pgid,stat,etime,wchan,cmd`` shows of each (this tree's own only).

    A survivor's parent and what it waits on tell which guarantee failed: a sandbox whose
    parent is this subreaper outlived the process that started it.
    """
    out = []
    now = time.time()
    for p in processes:
        try:
            with p.oneshot():
                cmdline = p.cmdline()
                tail = ["...", *cmdline[-3:]] if len(cmdline) > 8 else []
                out.append(
                    {
                        "pid": p.pid,
                        "ppid": p.ppid(),
                        "pgid": os.getpgid(p.pid),
                        "status": p.status(),
                        "seconds": round(now - p.create_time(), 1),
                        "wchan": _wchan(p.pid),
                        "cmdline": cmdline[:8] + tail,
                    }
                )
        except (psutil.Error, OSError):
            pass
    return out


def _wchan(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read().strip()
    except OSError:
        return ""


def _runs_a_kernel(pid: int) -> bool:
    try:
        tree = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return False
    for p in tree:
        try:
            # A kernel's command line: "-m ipykernel_launcher". The sandbox's bubblewrap
            # command also names ipykernel_launcher.py (a file it binds), also in the
            # self-test's sandbox, where no kernel runs.
            if "-m ipykernel_launcher" in " ".join(p.cmdline()):
                return True
        except psutil.Error:
            pass
    return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-once-kernel-runs", action="store_true")
    parser.add_argument("--grace", type=float, default=60.0)
    parser.add_argument("out")
    parser.add_argument("err")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit(f"prctl(PR_SET_CHILD_SUBREAPER) failed: errno {ctypes.get_errno()}")
    saw_kernel = False
    with open(args.out, "w") as out, open(args.err, "w") as err:
        proc = subprocess.Popen(
            command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
        )
        if args.kill_once_kernel_runs:
            deadline = time.monotonic() + 600
            while proc.poll() is None and time.monotonic() < deadline:
                if _runs_a_kernel(proc.pid):
                    saw_kernel = True
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.05)
        returncode = proc.wait()
    at_exit = _alive()
    described_at_exit = _describe(at_exit)  # before they end: who they were, what they waited on
    psutil.wait_procs(at_exit, timeout=args.grace)  # those that are ending as it ended
    survivors = _alive()
    report = {
        "pid": proc.pid,
        "returncode": returncode,
        "saw_kernel": saw_kernel,
        "at_exit": described_at_exit,
        "alive": _describe(survivors),
    }
    for p in survivors:  # leave nothing behind, whatever the outcome
        try:
            p.kill()
        except psutil.Error:
            pass
    _reap()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
