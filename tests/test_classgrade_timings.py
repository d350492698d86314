"""The benchmark's timings: off by default, marks per process and key, files read as hostile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import nbformat
import pytest
from course import Course, correct, grade_points, tool_env
from paths import ROOT

from classgrade.grade_outcome import TIMINGS_ENV

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_grading

NOTING = """\
import os, sys
from classgrade.grade_outcome import timings
timings.begin("rnn/learner/rnn")
timings.mark("job")
timings.add("kernel_cells", 0.001953125)  # less than this process takes: in range
timings.add("kernel_cells", 0.00390625)
timings.mark("answered", "rnn/learner")
timings.flush()
pid = os.fork()
if pid == 0:
    timings.mark("in_child")
    timings.flush()
    os._exit(0)
os.waitpid(pid, 0)
print(os.getpid(), pid)
"""


def _run_noting(env: dict[str, str]) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", NOTING], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    parent, child = done.stdout.split()
    return int(parent), int(child)


def test_marks_are_written_per_process_and_key_only_when_asked(tmp_path):
    env = tool_env()
    env.pop(TIMINGS_ENV, None)
    _run_noting(env)
    assert not list(tmp_path.iterdir())  # off: nothing written anywhere we can see

    env[TIMINGS_ENV] = str(tmp_path)
    start = time.monotonic()
    parent, child = _run_noting(env)
    end = time.monotonic()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{parent}.jsonl", f"{child}.jsonl"]
    )
    records = {(r.pid, r.key): r for r in bench_grading.read_timings(tmp_path, start, end)}
    job = records[(parent, "rnn/learner/rnn")]
    assert list(job.marks) == ["job"]
    assert job.sums == {"kernel_cells": 0.005859375}
    assert job.forked is None
    run = records[(parent, "rnn/learner")]
    assert list(run.marks) == ["answered"]
    assert run.sums == {}
    assert run.marks["answered"] >= job.marks["job"]
    forked = records[(child, "")]  # a fork starts afresh: its own marks, no key, no sums
    assert list(forked.marks) == ["in_child"]
    assert forked.sums == {}
    assert forked.forked is not None
    assert forked.forked <= forked.marks["in_child"]
    assert len(records) == 3


def test_reading_keeps_only_well_formed_names_and_numbers_in_range(tmp_path):
    good = {"pid": 7, "forked": 10.5, "key": "a/b/c", "marks": [["job", 11.0]], "sums": {}}
    lines = [
        json.dumps(good),
        "not json",
        json.dumps(["a", "list"]),
        json.dumps({"key": 5, "marks": [["job", 11.0]]}),
        json.dumps(
            {
                "pid": True,
                "forked": 1e308,
                "key": "k",
                "marks": [
                    ["early", 9.0],  # before the run began
                    ["late", 21.0],  # after it ended
                    ["flag", True],
                    ["text", "12"],
                    ["bad\nname", 12.0],
                    ["x" * 41, 12.0],
                    ["three", 12.0, 1],
                    ["kept", 12.0],
                    ["kept", 13.0],  # a name's first value is kept
                ]
                + [[f"m{i}", 12.0] for i in range(500)],
                "sums": {"negative": -1.0, "huge": 11.0, "ok": 2.5, "nan": "NaN"},
            }
        ),
        '{"pid": 8, "key": "n", "marks": [["nan", NaN], ["inf", Infinity]], "sums": {}}',
    ]
    (tmp_path / "1.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "2.jsonl").write_bytes(b"\xff\xfe not text")
    records = bench_grading.read_timings(tmp_path, 10.0, 20.0)
    assert [(r.key, r.pid) for r in records] == [("a/b/c", 7), ("k", -1), ("n", 8)]
    assert records[0].marks == {"job": 11.0}
    assert records[0].forked == 10.5
    hostile = records[1]
    assert hostile.forked is None
    assert hostile.marks["kept"] == 12.0
    assert not {"early", "late", "flag", "text", "bad\nname", "x" * 41, "three"} & set(
        hostile.marks
    )
    assert len(hostile.marks) == bench_grading.MAX_ENTRIES - 9 + 1  # only the first entries read
    assert hostile.sums == {"ok": 2.5}
    assert records[2].marks == {}


@pytest.mark.slow
def test_a_run_with_timings_notes_each_phase_and_the_kernel_cannot_write_them(tmp_path):
    """A real grading run, sandboxed: the job's marks are in order; the learner's cell that
    tries to write into the timings folder cannot (it is not in the sandbox)."""
    course = Course.create(tmp_path / "course", ("rnn",), release=True)
    folder = tmp_path / "timings"
    folder.mkdir()
    nb = correct(course, "rnn")
    forged = folder / "forged.jsonl"
    nb.cells.insert(
        3,
        nbformat.v4.new_code_cell(
            "try:\n"
            f'    open({str(forged)!r}, \'w\').write(\'{{"key": "x", "marks": []}}\')\n'
            "except OSError:\n"
            "    pass\n"
        ),
    )
    course.submit("learner", "rnn", nb)
    env = {**tool_env(), TIMINGS_ENV: str(folder)}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "classgrade", "grade", "--quiet", "--course-dir", str(course.path)],
        cwd=course.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    end = time.monotonic()
    assert done.returncode == 0, done.stdout + done.stderr
    assert sum(course.scores("learner", "rnn").values()) == sum(grade_points("rnn").values())
    assert not forged.exists()
    assert all(p.stat().st_uid == os.getuid() for p in folder.iterdir())
    jobs = [r for r in bench_grading.read_timings(folder, start, end) if r.forked is not None]
    noted = next(r for r in jobs if "executed" in r.marks)
    order = ["execute", "client", "kernel_info_reply", "kernel_ready", "probe", "probe_ready"]
    seen = [noted.marks[name] for name in [*order, "executed"]]
    assert seen == sorted(seen)
    assert noted.forked <= seen[0]
    sums = noted.sums
    assert sums["kernel_cells"] > 0
    assert sums["grade_cells"] > 0
    assert 0 < sums["channel_requests"] <= sums["grade_cells"]
