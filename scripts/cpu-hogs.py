"""Run a command while every CPU is kept busy, to check that it does not depend on an idle machine.

Usage: python scripts/cpu-hogs.py [--hogs N] [--max-seconds S] [-- COMMAND [ARG...]]

Starts N busy-loop processes (default: one per CPU this process may run on), runs COMMAND,
stops the hogs and exits with COMMAND's exit status. Without a command, the hogs run until this
script gets SIGTERM, SIGHUP or SIGINT (it then exits with status 0) or --max-seconds pass, so
that several commands can run beside them (scripts/test.sh). The hogs are bounded: each one exits by
itself after --max-seconds, and on Linux the kernel also stops it when this script dies.
Only the standard library is used.
"""

import argparse
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1

# Each hog spins until its deadline. It asks the kernel for SIGKILL when its parent dies, then
# checks that the parent is still the one that started it (it may have died just before).
# Arguments: parent pid, maximum seconds, prctl option, signal number.
_HOG = """
import ctypes, os, sys, time
parent, seconds, option, signum = int(sys.argv[1]), float(sys.argv[2]), *map(int, sys.argv[3:5])
try:
    ctypes.CDLL(None, use_errno=True).prctl(option, signum, 0, 0, 0)
except (AttributeError, OSError):
    pass
if os.getppid() != parent:
    sys.exit(0)
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    for _ in range(100_000):
        pass
"""


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def stop(hogs: list[subprocess.Popen]) -> None:
    """Kill the hogs still running and wait for every one."""
    for hog in hogs:
        if hog.poll() is None:
            hog.kill()
    for hog in hogs:
        hog.wait()


def main() -> int:
    """Start the hogs, run the command beside them, stop them; the command's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=cpu_count(), help="default: one per CPU")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=3600.0,
        help="each hog stops by itself after this long (default: %(default)s)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    # A SIGTERM (e.g. from a CI timeout) unwinds through the finally below, like Ctrl-C does.
    # Without a command, a signal is how the hogs are meant to stop: a success.
    def terminate(signum, _frame):
        raise SystemExit(128 + signum if command else 0)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    hog_argv = [sys.executable, "-c", _HOG, str(os.getpid()), str(args.max_seconds)]
    hog_argv += [str(_PR_SET_PDEATHSIG), str(int(signal.SIGKILL))]
    hogs: list[subprocess.Popen] = []
    try:
        for _ in range(args.hogs):
            hogs.append(subprocess.Popen(hog_argv))
        beside = " ".join(command) if command else "what runs until this is stopped"
        print(
            f"cpu-hogs: {len(hogs)} busy processes (at most {args.max_seconds:g} s) beside: "
            + beside,
            flush=True,
        )
        if not command:
            try:
                for hog in hogs:
                    hog.wait()
            except KeyboardInterrupt:
                pass
            return 0
        child = subprocess.Popen(command)
        try:
            return child.wait()
        except BaseException:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            raise
    finally:
        stop(hogs)


if __name__ == "__main__":
    sys.exit(main())
