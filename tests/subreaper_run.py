"""Run a command as a child subreaper, kill its whole process group once it runs a kernel, and
report (JSON on stdout) every descendant still alive afterwards.

Being a subreaper (prctl PR_SET_CHILD_SUBREAPER) means that every process the command starts,
however it detaches (new sessions, double forks), is re-parented here when its parent dies, so
the survivors are found in this process's own tree: no machine-wide process list is read.

Usage: python subreaper_run.py SECONDS -- COMMAND...   (SECONDS: how long survivors may take
to end before they count)
"""

from __future__ import annotations

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
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _alive_descendants() -> list[psutil.Process]:
    _reap()
    alive = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def main() -> int:
    grace = float(sys.argv[1])
    command = sys.argv[3:]
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    proc = subprocess.Popen(command, start_new_session=True)
    saw_kernel = False
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        for p in psutil.Process(proc.pid).children(recursive=True):
            try:
                saw_kernel = saw_kernel or "ipykernel_launcher" in " ".join(p.cmdline())
            except psutil.Error:
                pass
        if saw_kernel:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole command, as a terminal's kill would
    proc.wait()
    end = time.monotonic() + grace
    survivors = _alive_descendants()
    while survivors and time.monotonic() < end:
        time.sleep(0.1)
        survivors = _alive_descendants()
    report = []
    for p in survivors:
        try:
            report.append({"pid": p.pid, "name": p.name(), "cmdline": p.cmdline()[:6]})
        except psutil.NoSuchProcess:
            pass
    for p in survivors:  # leave nothing behind, whatever the outcome
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    print(json.dumps({"saw_kernel": saw_kernel, "survivors": report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
