"""One notebook's job never costs another its grade; per-sandbox cgroups bound a notebook whole.

The job pool runs stand-in targets (this module's functions, forked like real jobs) that end
in every way a grading process can end: an answer, an exception, ``SystemExit``, ``os._exit``,
a signal, a hang past the deadline, bytes that are not an answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from course import SUBREAPER_RUN

from classgrade import cgroups, reaper
from classgrade.grade_outcome import job_ended
from classgrade.job_pool import JobPool, run_jobs
from classgrade.notebook_job import ExecJob, ExecResult
from classgrade.sandbox import Limits

pytestmark = pytest.mark.scheduling

SHIM = Path(cgroups.__file__).with_name("_shim.py")


def _job(key: str, index: int) -> ExecJob:
    return ExecJob(
        key=key,
        index=index,
        notebook_json="",
        assignment_files=[],
        data_dir=".",
        import_dir=".",
        scratch_root=".",
        limits=Limits(),
    )


def held(job: ExecJob, conn) -> None:
    """A job in flight: dies with the fork server as a grading job does, says it started, waits."""
    from classgrade.notebook_job import _die_with_parent

    _die_with_parent()
    (Path(job.data_dir) / job.key.replace("/", "-")).touch()
    time.sleep(3600)
    os._exit(0)


def stand_in(job: ExecJob, conn) -> None:
    """A job target whose behaviour is named by the job's key."""
    how = job.key.split("/")[-1]
    if how == "answers":
        conn.send_bytes(ExecResult(job.key, True, notebook_json="{}").to_json())
    elif how == "raises":
        raise RuntimeError("a bug in the grading code")
    elif how == "system_exit":
        raise SystemExit(2)
    elif how == "os_exit":
        os._exit(3)
    elif how == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "hangs":
        time.sleep(3600)
    elif how == "garbage":
        conn.send_bytes(b"\x00not json")
    elif how == "someone_else":
        conn.send_bytes(ExecResult("a/b/other", True).to_json())
    os._exit(0)


def test_each_job_fails_alone_however_it_ends():
    kinds = ["raises", "answers", "system_exit", "answers", "os_exit", "killed", "hangs",
             "garbage", "someone_else", "answers"]  # fmt: skip
    pool = JobPool(workers=3, target=stand_in)
    ended = []
    pool.on_ended = ended.append
    results = {}
    pending = [_job(f"a/s{i}/{kind}", i) for i, kind in enumerate(kinds)]
    deadline = time.monotonic() + 300
    try:
        while (pending or pool.running) and time.monotonic() < deadline:
            while pending and pool.free() > 0:
                job = pending.pop(0)
                pool.start(job, seconds=5 if job.key.endswith("hangs") else 120)
            for job, result in pool.wait(timeout=1.0):
                results[job.key] = result
    finally:
        pool.close()
    assert len(results) == len(kinds)
    for key, result in results.items():
        kind = key.split("/")[-1]
        assert result.ok == (kind == "answers"), (key, result)
        assert result.key == key
    reasons = {key.split("/")[-1]: r.reason for key, r in results.items()}
    assert "exit code 3" in reasons["os_exit"]
    assert "signal 9" in reasons["killed"]
    assert "deadline" in reasons["hangs"]
    assert "bad answer" in reasons["garbage"]
    assert "bad answer" in reasons["someone_else"]
    assert "exit code" in reasons["system_exit"]
    assert sorted(job.key for job in ended) == sorted(results)


PARENTS = cgroups.detect()
needs_cgroup = pytest.mark.skipif(PARENTS is None, reason="no cgroup can be made here")


@needs_cgroup
def test_a_cgroup_bounds_the_processes_of_a_whole_sandbox():
    group = cgroups.Cgroup.create(PARENTS, f"{cgroups.PREFIX}test-{os.getpid()}-1", 2**30, 20)
    try:
        bomb = (
            "import os, time\n"
            "made = 0\n"
            "try:\n"
            "    for _ in range(200):\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(30); os._exit(0)\n"
            "        made += 1\n"
            "except OSError:\n"
            "    pass\n"
            "print(made)\n"
            "os.killpg(0, 9)\n"
        )
        done = subprocess.run(
            [*group.enter_command(), "python3", "-c", bomb],
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
            check=False,
        )
        assert 0 < int(done.stdout.split()[0]) < 20
    finally:
        group.remove()
    assert not any(f.exists() for f in group.folders)


@needs_cgroup
def test_a_cgroup_bounds_the_memory_of_many_processes_together():
    group = cgroups.Cgroup.create(PARENTS, f"{cgroups.PREFIX}test-{os.getpid()}-2", 300 * 2**20, 64)
    try:
        spread = (
            "import os, sys\n"
            "kids = []\n"
            "for _ in range(5):\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        block = bytearray(100 * 2**20)\n"  # 100 MB each: 500 MB in all
            "        for i in range(0, len(block), 4096): block[i] = 1\n"
            "        os._exit(0)\n"
            "    kids.append(pid)\n"
            "codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in kids]\n"
            "print(sum(c != 0 for c in codes))\n"
        )
        done = subprocess.run(
            [*group.enter_command(), "python3", "-c", spread],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        killed = int(done.stdout.split()[0]) if done.stdout.strip() else 5
        assert killed >= 1 or done.returncode != 0
        assert group.out_of_memory()
    finally:
        group.remove()


@needs_cgroup
def test_stale_groups_are_removed_with_their_processes():
    name = f"{cgroups.PREFIX}999999999.1-7"
    group = cgroups.Cgroup.create(PARENTS, name, 2**30, 20)
    sleeper = subprocess.Popen([*group.enter_command(), "sleep", "600"])
    try:
        deadline = time.monotonic() + 60
        while sleeper.pid not in group.pids() and time.monotonic() < deadline:
            time.sleep(0.01)  # until the process has entered its group
        assert cgroups.remove_stale(PARENTS, lambda token: token == "999999999.1") == 1
        assert sleeper.wait(timeout=60) == -9
        assert not any(f.exists() for f in group.folders)
    finally:
        group.remove()


def test_run_jobs_takes_a_job_only_when_the_pool_has_room_and_closing_ends_the_rest():
    """The run's seam: jobs are drawn lazily, every result comes back, closing kills what runs."""
    pool = JobPool(workers=2, target=stand_in)
    ended: list[str] = []
    pool.on_ended = lambda job: ended.append(job.key)
    running_when_drawn: list[int] = []

    def jobs(kinds: list[str]) -> Iterator[ExecJob]:
        for i, kind in enumerate(kinds):
            running_when_drawn.append(len(pool.running))
            yield _job(f"a/s{i}/{kind}", i)

    kinds = ["answers", "raises", "answers", "answers", "os_exit"]
    results = dict((job.key, result) for job, result in run_jobs(jobs(kinds), pool, 120))
    assert sorted(results) == sorted(f"a/s{i}/{kind}" for i, kind in enumerate(kinds))
    assert [results[f"a/s{i}/answers"].ok for i in (0, 2, 3)] == [True, True, True]
    assert not results["a/s1/raises"].ok
    assert not results["a/s4/os_exit"].ok
    assert max(running_when_drawn) < pool.workers
    assert sorted(ended) == sorted(results)

    ended.clear()
    pool = JobPool(workers=2, target=stand_in)
    pool.on_ended = lambda job: ended.append(job.key)
    stream = run_jobs(iter([_job("b/s0/hangs", 10), _job("b/s1/answers", 11)]), pool, 120)
    job, result = next(stream)
    assert (job.key, result.ok) == ("b/s1/answers", True)
    stream.close()  # the run stops: the job still running is killed and cleaned up after
    assert sorted(ended) == ["b/s0/hangs", "b/s1/answers"]
    assert not pool.running


# -- a parent that ends before its child asks to die with it -----------------------------------

# Run as a child subreaper, so the orphan below comes back here and its end can be read.
# This process forks P, which sets up ``which`` and forks C, then ends at once. C waits until
# it has been re-parented (P is gone: the window between fork and prctl, forced), then asks for
# the parent-death signal as the shim's kernel or a grading job does. A child that carries on
# afterwards would never get the signal: it must end itself. Prints C's exit code.
_ORPHAN = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
which = sys.argv[1]
p = os.fork()
if p == 0:
    if which == "job":
        from classgrade import notebook_job  # imported by P, as the fork server imports it
    else:
        from classgrade import _shim
    parent = os.getpid()  # before the fork: P may be gone before C first runs
    c = os.fork()
    if c == 0:
        deadline = time.monotonic() + 120
        while os.getppid() == parent and time.monotonic() < deadline:
            time.sleep(0.001)
        assert os.getppid() != parent, "the parent did not end"
        if which == "job":
            notebook_job._die_with_parent()
        else:
            _shim.die_with(parent, libc)
        os._exit(0)  # carried on: it would outlive its parent
    os._exit(0)
codes = {}
while True:
    try:
        pid, status = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    codes[pid] = os.waitstatus_to_exitcode(status)
codes.pop(p)
print(list(codes.values())[0])
"""


@pytest.mark.parametrize("which", ["shim", "job"])
def test_a_child_whose_parent_ended_before_it_asked_to_die_with_it_ends_itself(which):
    done = subprocess.run(
        [sys.executable, "-c", _ORPHAN, which], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) != 0


def test_a_job_ends_when_its_run_ends(tmp_path):
    """The run's process watched through a pidfd: SIGKILL of the run alone ends the job."""
    run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    job = None
    try:
        token = reaper._token(psutil.Process(run.pid))
        scratch = tmp_path / f"{reaper.SCRATCH_PREFIX}{token}"
        watching = (
            "import sys, time\n"
            "from classgrade import notebook_job\n"
            "notebook_job._end_with_run(sys.argv[1])\n"
            "print('watching', flush=True)\n"
            "time.sleep(600)\n"
        )
        job = subprocess.Popen(
            [sys.executable, "-c", watching, str(scratch)], stdout=subprocess.PIPE, text=True
        )
        assert job.stdout is not None
        assert job.stdout.readline().strip() == "watching"
        assert job.poll() is None
        run.kill()
        assert job.wait(timeout=120) == 1
        run.wait(timeout=60)
        # A job whose run has already ended does not start.
        late = subprocess.run(
            [sys.executable, "-c", watching, str(scratch)], capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert (late.returncode, late.stdout) == (1, "")
    finally:
        for process in (run, job):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=60)
        if job is not None and job.stdout is not None:
            job.stdout.close()


def test_a_shim_whose_lifeline_ended_before_it_started_leaves_nothing(tmp_path):
    """The grading process killed as the sandbox starts: the shim races its own kernel's start.

    Run under a child subreaper (``subreaper_run.py``), each time: whatever the order of the
    lifeline's watcher and the fork, the kernel (here a sleep) ends with the shim.
    """
    settings = {"lifeline_fd": 5, "own_pid_namespace": False, "cwd": str(tmp_path)}
    shim = [sys.executable, "-I", str(SHIM), json.dumps(settings), "--"]
    kernel = [sys.executable, "-c", "import time; time.sleep(600)"]
    # fd 5 reads /dev/null: end-of-file at once, as a lifeline whose writer is dead.
    command = ["/bin/sh", "-c", 'exec "$@" 5</dev/null', "sh", *shim, *kernel]
    for attempt in range(8):
        out, err = tmp_path / f"out{attempt}", tmp_path / f"err{attempt}"
        launched = subprocess.run(
            [sys.executable, str(SUBREAPER_RUN), "--grace", "60", str(out), str(err), "--",
             *command],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert launched.returncode == 0, launched.stderr[-2000:]
        report = json.loads(launched.stdout.strip().splitlines()[-1])
        assert report["returncode"] == 137, err.read_text()[-2000:]
        assert report["alive"] == [], report


def test_a_later_run_reaps_a_sandbox_its_dead_run_never_recorded(tmp_path, monkeypatch):
    """A grading process killed as bubblewrap starts records nothing: the command line tells."""
    monkeypatch.setattr(reaper.tempfile, "gettempdir", lambda: str(tmp_path))
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f"{reaper.SCRATCH_PREFIX}{int(finished.stdout)}.12345"
    live = reaper.scratch_root(reaper.run_token())
    for folder in (stale / "job-3-0", live / "job-3-0"):
        folder.mkdir(parents=True)
    # Stand-ins for bubblewrap: the scratch folder in their arguments, and a child without it.
    parent_of = "import subprocess, sys, time; subprocess.Popen(sys.argv[2:]); time.sleep(600)"
    child = [sys.executable, "-c", "import time; time.sleep(600)"]
    unrecorded = subprocess.Popen([sys.executable, "-c", parent_of, str(stale / "job-3-0"), *child])
    kept = subprocess.Popen([sys.executable, "-c", parent_of, str(live / "job-3-0"), *child])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(
            psutil.Process(p.pid).children() for p in (unrecorded, kept)
        ):
            time.sleep(0.05)
        grandchild = psutil.Process(unrecorded.pid).children()[0]
        assert reaper.reap_stale(None) == 1
        assert unrecorded.wait(timeout=60) == -9
        grandchild.wait(timeout=60)
        assert not stale.exists()
        assert kept.poll() is None
    finally:
        for process in (unrecorded, kept):
            with contextlib.suppress(psutil.Error):
                for descendant in psutil.Process(process.pid).children(recursive=True):
                    descendant.kill()
            process.kill()
            process.wait(timeout=60)


def watches_its_run(job: ExecJob, conn) -> None:
    """A job target that starts as a grading job does, then waits to be ended."""
    from classgrade import notebook_job

    notebook_job._die_with_parent()
    notebook_job._end_with_run(job.scratch_root)
    conn.send_bytes(b"started")
    time.sleep(600)


_RUN = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from classgrade import reaper
from classgrade.job_pool import JobPool
from classgrade.notebook_job import ExecJob
from classgrade.sandbox import Limits
from test_classgrade_jobs import watches_its_run

if __name__ == "__main__":
    pool = JobPool(1, target=watches_its_run)
    scratch = str(reaper.scratch_root(reaper.run_token()))
    pool.start(ExecJob("a/b/c", 1, "", [], ".", ".", scratch, Limits()), 600)
    assert pool.running[0].conn.recv_bytes() == b"started"
    print(pool.running[0].process.pid, flush=True)
    time.sleep(600)
"""


def test_a_job_ends_when_the_run_alone_is_killed():
    """The fork server outlives its run while a job lives (the job holds the server's lifeline):
    the job ends by watching the run itself, and the server then ends with its last client."""
    run = subprocess.Popen(
        [sys.executable, "-c", _RUN, str(Path(__file__).parent)], stdout=subprocess.PIPE, text=True
    )
    job = None
    try:
        assert run.stdout is not None
        job = psutil.Process(int(run.stdout.readline()))
        server = job.parent()
        assert server is not None
        assert server.pid != run.pid  # the fork server, not the run
        run.kill()
        run.wait(timeout=60)
        job.wait(timeout=120)
        server.wait(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=60)
        if run.stdout is not None:
            run.stdout.close()
        if job is not None and job.is_running():
            job.kill()


def test_the_lifeline_is_closed_once_whichever_thread_closes_it():
    """A second close (the watchdog's, then the job's own) never closes the descriptor that
    reused the lifeline's number meanwhile (a ZeroMQ one aborts the job when closed under it)."""
    from classgrade.notebook_job import ClosedOnce

    read_end, write_end = os.pipe()
    lifeline = ClosedOnce(write_end)
    lifeline.close()
    reused_read, reused_write = os.pipe()  # the lowest free numbers: the lifeline's comes back
    try:
        assert write_end in (reused_read, reused_write)
        lifeline.close()
        os.fstat(reused_read)
        os.fstat(reused_write)
    finally:
        for fd in (read_end, reused_read, reused_write):
            os.close(fd)


def test_a_dead_fork_server_fails_only_the_jobs_in_flight(tmp_path):
    """The fork server is the one part the jobs share: killed, it takes only the jobs it
    forked that still run (each fails alone, with the plain reason of a job that ended), and
    the next job gets a new server."""
    pool = JobPool(2, target=held)
    try:
        for n in range(2):
            job = _job(f"a/learner{n}/held", n)
            job.data_dir = str(tmp_path)
            pool.start(job, 600)
        deadline = time.monotonic() + 120
        while len(list(tmp_path.iterdir())) < 2:
            assert time.monotonic() < deadline, "the jobs did not start"
            time.sleep(0.1)
        server = psutil.Process(pool.running[0].process.pid).parent()
        assert server is not None
        assert server.pid != os.getpid()
        server.kill()  # not waited for here: multiprocessing reaps it and starts a new one
        ended = []
        while len(ended) < 2:
            assert time.monotonic() < deadline + 120, "the jobs outlived their fork server"
            ended += pool.wait(timeout=1.0)
        # Killed by their parent-death signal; the server that would report it is gone, and
        # multiprocessing then says 255.
        reasons = {job_ended(-signal.SIGKILL), job_ended(255)}
        assert [r.ok for _, r in ended] == [False, False]
        assert {r.reason for _, r in ended} <= reasons, [r.reason for _, r in ended]
    finally:
        pool.close()
    results = list(run_jobs([_job("a/learner2/answers", 2)], JobPool(1, target=stand_in), 600))
    assert [(job.key, result.ok) for job, result in results] == [("a/learner2/answers", True)]
