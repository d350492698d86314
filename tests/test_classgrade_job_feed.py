"""The run's seam fed while it runs (``job_pool.run_jobs`` with a source that says "nothing to
start yet"): what ``classgrade watch`` adds to a running run starts beside a notebook that
hangs, and comes back while that one still runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

from test_classgrade_jobs import _job  # the stand-in jobs' one builder

from classgrade.job_pool import JobPool, run_jobs
from classgrade.notebook_job import ExecJob, ExecResult


def stand_in(job: ExecJob, conn) -> None:
    """A job target: ``.../hangs`` never answers, anything else answers at once."""
    if job.key.endswith("/hangs"):
        time.sleep(3600)
    conn.send_bytes(ExecResult(job.key, True, notebook_json="{}").to_json())


def test_a_job_fed_to_a_running_run_starts_and_ends_beside_a_hanging_one():
    pool = JobPool(workers=2, target=stand_in)
    ended: list[str] = []
    pool.on_ended = lambda job: ended.append(job.key)
    asked: list[int] = []  # how many jobs ran each time the source was asked
    fed: list[str] = []

    def source() -> Iterator[ExecJob | None]:
        yield _job("a/mallory/hangs", 1)
        asked.append(len(pool.running))
        yield None  # nothing new yet: the run waits for what runs, then asks again
        asked.append(len(pool.running))
        fed.append("a/alice/answers")
        yield _job("a/alice/answers", 2)
        while True:  # still being fed: nothing more, while the hanging job runs
            asked.append(len(pool.running))
            yield None

    stream = run_jobs(source(), pool, 120)
    job, result = next(stream)
    assert (job.key, result.ok) == ("a/alice/answers", True)
    assert fed == ["a/alice/answers"]
    assert asked[:2] == [1, 1]  # asked again after a wait, the hanging job still running
    assert [r.job.key for r in pool.running] == ["a/mallory/hangs"]
    stream.close()  # closing ends the hanging job
    assert sorted(ended) == ["a/alice/answers", "a/mallory/hangs"]
    assert not pool.running


def test_a_fed_run_ends_when_its_source_ends_and_nothing_runs():
    pool = JobPool(workers=1, target=stand_in)

    def source() -> Iterator[ExecJob | None]:
        yield _job("b/bob/answers", 1)
        yield None  # bob's job runs: wait for it
        yield _job("b/eve/answers", 2)

    keys = [job.key for job, result in run_jobs(source(), pool, 120) if result.ok]
    assert keys == ["b/bob/answers", "b/eve/answers"]
    assert not pool.running
