"""Red team, the sandbox's identity and what it can import: two courses graded at the same time.

Two real ``python -m classgrade grade`` runs, started together, each on a course of its own.
The first learner of course A fills its sandbox's process limit, tries to leave a key in every
keyring it can name, makes SysV shared memory and a semaphore set and writes a note in every
folder it can write to, then holds all of it. Only then (course A's run is watched from here,
through its process tree) is the first learner of course B let go, through a file of B's
released assignment that its sandbox sees: it must be able to start processes, score full
marks and find nothing of A's (when the first notebooks of two runs shared a uid, the holder's
processes counted against B's limit, and the keys were B's too). A is let go the same way once
B's run has ended.

Course A also grades each way of reaching Keras that the in-kernel detection lost to, each
followed by a correct learner: the files are not in the sandbox, so every one fails, and the
gate that relies on it scores 0 with a message that says Keras is not available.
"""

from __future__ import annotations

import ast
import copy
import os
import platform
import subprocess
import sys
import sysconfig
import time

import nbformat
import psutil
import pytest
from course import (
    Course,
    answer_of_grade_cells,
    correct,
    fill,
    grade_points,
    solution_answers,
    tool_env,
)

from classgrade.sandbox import SANDBOX_UID_BASE, SANDBOX_UID_SPAN, visible_entries

pytestmark = [pytest.mark.slow, pytest.mark.scheduling]

A = "rnn"
STEP, SEQUENCE = "rnn_step_answer", "rnn_sequence_answer"
SYNC = "sync.txt"  # in each course's released assignment: the sandbox sees it, read-only
HOLD_MARKER = "7253"  # ``sleep 7253``: the holder is holding everything
NOT_AVAILABLE = "the grading kernel has only NumPy, SciPy and Matplotlib"
SITE = sysconfig.get_paths()["purelib"]
RUN_LIMITS = (
    "--workers",
    "1",
    "--cell-seconds",
    "900",
    "--notebook-seconds",
    "1200",
    "--processes",
    "64",
    "--quiet",
)
WAIT_SECONDS = 1500  # for each step of the two runs; they end well before on a busy machine
HOLD_SECONDS = 800  # the longest a learner cell waits for its go (less than a cell may run)

# add_key and keyctl by machine (keyutils may not be installed: the raw system calls).
NR_ADD_KEY, NR_KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}[platform.machine()]
KEYRINGS = {"session": -3, "user": -4, "user-session": -5}  # KEY_SPEC_*
SYSV_KEY = 0x7253

# Shared by the holder and the reader: the folders of the sandbox's writable mounts.
WRITABLE_MOUNTS = """
def writable_folders():
    mounts = []
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        point, options = fields[4], fields[5].split(",")
        if "rw" in options and not point.startswith(("/proc", "/sys")):
            mounts.append(point)
    seen = []
    for mount in mounts:
        device = os.stat(mount).st_dev
        for folder, dirs, _files in os.walk(mount):
            # Each mount on its own: the other mounts below it are in the list if writable.
            dirs[:] = [d for d in dirs if os.lstat(os.path.join(folder, d)).st_dev == device]
            if os.access(folder, os.W_OK):
                seen.append(folder)
    return sorted(set(seen))
"""

HOLDER = f"""import ctypes, os, subprocess, time
libc = ctypes.CDLL(None, use_errno=True)
{WRITABLE_MOUNTS}
print("UID", os.getuid())
for name, spec in {KEYRINGS!r}.items():
    key = libc.syscall({NR_ADD_KEY}, b"user", b"note-" + name.encode(), b"A", 1, spec)
    print("KEY", name, key if key >= 0 else os.strerror(ctypes.get_errno()))
persistent = libc.syscall({NR_KEYCTL}, 22, -1, -4)  # KEYCTL_GET_PERSISTENT, linked into @u
print("KEY persistent", persistent if persistent >= 0 else os.strerror(ctypes.get_errno()))
print("SHM", libc.shmget({SYSV_KEY}, 4096, 0o1666), "SEM", libc.semget({SYSV_KEY}, 1, 0o1666))
written = 0
for folder in writable_folders():
    try:
        with open(os.path.join(folder, ".note-from-a"), "w") as f:
            f.write("A")
        written += 1
    except OSError:
        pass
print("NOTES", written)
r, w = os.pipe()
held = []
while len(held) < 10000:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    held.append(pid)
for pid in held[:3]:  # room for the marker
    os.kill(pid, 9)
    os.waitpid(pid, 0)
held = held[3:]
print("HELD", len(held))
marker = subprocess.Popen(["sleep", "{HOLD_MARKER}"])
deadline = time.monotonic() + {HOLD_SECONDS}
while open("{SYNC}").read().strip() != "done" and time.monotonic() < deadline:
    time.sleep(0.05)
print("LET GO", open("{SYNC}").read().strip())
os.close(w)
for pid in held:
    os.waitpid(pid, 0)
marker.kill()
marker.wait()
"""

READER = f"""import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
{WRITABLE_MOUNTS}
deadline = time.monotonic() + {HOLD_SECONDS}
while open("{SYNC}").read().strip() != "go" and time.monotonic() < deadline:
    time.sleep(0.05)
print("WAITED", open("{SYNC}").read().strip())
print("UID", os.getuid())
r, w = os.pipe()
children, refused = [], 0
for _ in range(8):  # the holder fills its own sandbox's process limit, not this one's
    try:
        pid = os.fork()
    except OSError:
        refused += 1
        continue
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    children.append(pid)
os.close(w)
for pid in children:
    os.waitpid(pid, 0)
if refused:
    print("FOUND processes refused", refused)
buffer = ctypes.create_string_buffer(4096)
for name, spec in {KEYRINGS!r}.items():
    size = libc.syscall({NR_KEYCTL}, 11, spec, buffer, 4096)  # KEYCTL_READ: the keys in it
    if size > 0:
        print("FOUND keys in", name, buffer.raw[:size])
    for desc in {tuple(KEYRINGS)!r}:
        found = libc.syscall({NR_KEYCTL}, 10, spec, b"user", b"note-" + desc.encode(), 0)
        if found >= 0:
            print("FOUND key", desc, "in", name)
try:
    keys = open("/proc/keys").read()
except OSError:
    keys = ""
if "note-" in keys:
    print("FOUND in /proc/keys", keys)
if libc.shmget({SYSV_KEY}, 0, 0) >= 0 or libc.semget({SYSV_KEY}, 0, 0) >= 0:
    print("FOUND SysV IPC")
for table in ("shm", "sem", "msg"):
    rows = open("/proc/sysvipc/" + table).read().splitlines()[1:]
    if rows:
        print("FOUND in /proc/sysvipc/" + table, rows)
for folder in writable_folders():
    if os.path.exists(os.path.join(folder, ".note-from-a")):
        print("FOUND note in", folder)
print("SEARCH DONE")
"""

# -- Each way of reaching Keras that the in-kernel detection lost to -----------------------------

HELPER_PROCESS = '''import json, subprocess, sys
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    code = """import json, sys
import numpy as np
import keras
x_t, h_prev, W_xh, W_hh, b_h = json.load(sys.stdin)
cell = keras.layers.SimpleRNNCell(len(W_hh), use_bias=b_h is not None)
cell.build((None, len(W_xh)))
cell.set_weights([np.array(W_xh), np.array(W_hh)] + ([np.array(b_h)] if b_h is not None else []))
out, _ = cell(np.array(x_t, "float32"), [np.array(h_prev, "float32")])
print(json.dumps(np.asarray(out).tolist()))
"""
    data = [None if a is None else np.asarray(a).tolist() for a in (x_t, h_prev, W_xh, W_hh, b_h)]
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(data),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return np.array(json.loads(done.stdout))
'''

REAL_PATH = f"""import importlib.util, sys
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    site = {SITE!r}
    spec = importlib.util.spec_from_file_location(
        "not_keras", site + "/keras/__init__.py", submodule_search_locations=[site + "/keras"])
    module = importlib.util.module_from_spec(spec)
    sys.modules["not_keras"] = module
    spec.loader.exec_module(module)
    cell = module.layers.SimpleRNNCell(np.shape(W_hh)[0], use_bias=b_h is not None)
    cell.build((None, np.shape(x_t)[1]))
    cell.set_weights([W_xh, W_hh] + ([b_h] if b_h is not None else []))
    return np.asarray(cell(np.asarray(x_t, "float32"), [np.asarray(h_prev, "float32")])[0])
"""

COPIED = f"""import shutil, sys, tempfile
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    copy = tempfile.mkdtemp()
    for name in ("keras", "tensorflow"):
        shutil.copytree({SITE!r} + "/" + name, copy + "/" + name)
    sys.path.insert(0, copy)
    import keras
    cell = keras.layers.SimpleRNNCell(np.shape(W_hh)[0], use_bias=b_h is not None)
    cell.build((None, np.shape(x_t)[1]))
    cell.set_weights([W_xh, W_hh] + ([b_h] if b_h is not None else []))
    return np.asarray(cell(np.asarray(x_t, "float32"), [np.asarray(h_prev, "float32")])[0])
"""

# Lists the site-packages folder (printed: the test compares it with the allow-list) and every
# folder on sys.path for a copy of Keras under any name, then imports what it found.
LISTED = f"""import os, sys
listing = sorted(os.listdir({SITE!r}))
print("LISTING", listing)
def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    for folder in [p for p in sys.path if os.path.isdir(p)]:
        for name in os.listdir(folder):
            if "keras" in name.lower() or "tensorflow" in name.lower():
                sys.path.insert(0, folder)
    import keras
    layer = keras.layers.SimpleRNN(np.shape(W_hh)[0], return_sequences=True)
    layer.build((None, None, np.shape(x)[2]))
    layer.set_weights([W_xh, W_hh, np.zeros(np.shape(W_hh)[0]) if b_h is None else b_h])
    return np.asarray(layer(np.asarray(x, "float32"), initial_state=h0), dtype=float)
"""

TF_FUNCTION = """import tensorflow as tf
@tf.function
def _traced_step(x_t, h_prev, W_xh, W_hh, b_h):
    return tf.tanh(tf.matmul(x_t, W_xh) + tf.matmul(h_prev, W_hh) + b_h)
_traced_step.get_concrete_function(
    tf.TensorSpec(None, tf.float64), tf.TensorSpec(None, tf.float64),
    tf.TensorSpec(None, tf.float64), tf.TensorSpec(None, tf.float64),
    tf.TensorSpec(None, tf.float64))
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    b = np.zeros(np.shape(W_hh)[0]) if b_h is None else b_h
    return _traced_step(x_t, h_prev, W_xh, W_hh, b).numpy()
"""

# name -> (the answer cell it replaces, its code, a text of the message its failure shows)
EVASIONS = {
    "helper_process": (STEP, HELPER_PROCESS, NOT_AVAILABLE),
    "real_path": (STEP, REAL_PATH, "No such file or directory"),
    "copied_package": (STEP, COPIED, "No such file or directory"),
    "listed_site_packages": (SEQUENCE, LISTED, NOT_AVAILABLE),
    "tf_function": (STEP, TF_FUNCTION, NOT_AVAILABLE),
}


def _full() -> float:
    return sum(grade_points(A).values())


def _score_without(answer: str) -> float:
    """The full score less the checks of the answer cell ``answer`` (the other function is
    graded with a correct stand-in for the broken one)."""
    owner = answer_of_grade_cells(A)
    return _full() - sum(p for cell, p in grade_points(A).items() if owner[cell] == answer)


def _with_cell(nb, source: str, after: str = SEQUENCE):
    nb = copy.deepcopy(nb)
    index = next(
        k for k, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == after
    )
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


def _start(course: Course) -> tuple[subprocess.Popen, object, object]:
    out = open(course.path.parent / f"{course.path.name}.stdout", "w")
    err = open(course.path.parent / f"{course.path.name}.stderr", "w")
    command = [sys.executable, "-m", "classgrade", "grade", *RUN_LIMITS]
    process = subprocess.Popen(
        [*command, "--course-dir", str(course.path)],
        cwd=course.path,
        env=tool_env(),
        stdout=out,
        stderr=err,
    )
    return process, out, err


def _holding(process: subprocess.Popen) -> bool:
    """Whether the holder's marker runs among the run's own descendants."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        return False
    for child in tree:
        try:
            if child.cmdline() == ["sleep", HOLD_MARKER]:
                return True
        except psutil.Error:
            continue
    return False


def _log(course: Course) -> str:
    parent = course.path.parent
    return (parent / f"{course.path.name}.stdout").read_text()[-3000:] + (
        parent / f"{course.path.name}.stderr"
    ).read_text()[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("isolation")
    a = Course.create(root / "course_a", (A,), release=True)
    b = Course.create(root / "course_b", (A,), release=True)
    for course in (a, b):
        (course.path / "exercises" / A / SYNC).write_text("wait\n")
    a.submit("a00_holder", A, _with_cell(correct(a, A), HOLDER))
    for k, (name, (answer, code, _message)) in enumerate(EVASIONS.items(), start=1):
        a.submit(f"a{k:02d}_{name}", A, fill(a.release(A), {**solution_answers(A), answer: code}))
        a.submit(f"a{k:02d}z_correct", A, correct(a, A))
    b.submit("b00_reader", A, _with_cell(correct(b, A), READER))
    b.submit("b01_correct", A, correct(b, A))

    started = [_start(a), _start(b)]
    (run_a, *_), (run_b, *_) = started
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not _holding(run_a):
            assert run_a.poll() is None, "course A's run ended before its holder held:\n" + _log(a)
            assert time.monotonic() < deadline, "the holder never held:\n" + _log(a)
            time.sleep(0.1)
        (b.path / "exercises" / A / SYNC).write_text("go\n")  # the same file, rewritten
        run_b.wait(timeout=WAIT_SECONDS)
        (a.path / "exercises" / A / SYNC).write_text("done\n")
        run_a.wait(timeout=WAIT_SECONDS)
    finally:
        for process, out, err in started:
            if process.poll() is None:
                process.kill()
                process.wait()
            out.close()
            err.close()
    return a, b


def _student(name: str) -> str:
    return f"a{list(EVASIONS).index(name) + 1:02d}_{name}"


def _entry(course: Course, student: str) -> dict:
    return course.journal()[f"{A}/{student}"]


def _printed(course: Course, student: str, marker: str) -> str:
    """What the learner cell whose source has ``marker`` printed."""
    nb = nbformat.read(course.autograded(student, A), 4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and marker in c.source)
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _errors(course: Course, student: str) -> dict[str, str]:
    out = {}
    for k, cell in enumerate(nbformat.read(course.autograded(student, A), 4).cells):
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                out[cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {k}"] = (
                    f"{o.ename}: {o.evalue}"
                )
    return out


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_the_holder_held_and_tried_to_leave_everything(runs):
    a, _b = runs
    entry = _entry(a, "a00_holder")
    assert entry["status"] == "graded", entry
    assert entry["score"] == pytest.approx(_full()), entry
    printed = _printed(a, "a00_holder", "HELD")
    held = int(_lines(printed, "HELD")[0].split()[1])
    assert held >= 32, printed  # of the sandbox's 64 (its kernel's threads count too)
    # Keyrings are kept per uid outside every namespace: the sandbox gets no keyring calls.
    keys = _lines(printed, "KEY ")
    assert len(keys) == 4, printed
    assert all(line.endswith("Operation not permitted") for line in keys), keys
    shm, sem = _lines(printed, "SHM")[0].split()[1::2]
    assert int(shm) >= 0, printed  # made: the reader must not see them
    assert int(sem) >= 0, printed
    assert int(_lines(printed, "NOTES")[0].split()[1]) >= 2, printed  # /tmp, the work folder...
    assert "LET GO done" in printed, printed


def test_the_other_courses_first_learner_got_a_kernel_and_found_nothing(runs):
    a, b = runs
    entry = _entry(b, "b00_reader")
    assert entry["status"] == "graded", entry
    assert entry["score"] == pytest.approx(_full()), entry
    printed = _printed(b, "b00_reader", "SEARCH DONE")
    assert "WAITED go" in printed, printed
    assert "SEARCH DONE" in printed, printed
    assert "FOUND" not in printed, printed
    assert _entry(b, "b01_correct")["score"] == pytest.approx(_full())
    holder = int(_lines(_printed(a, "a00_holder", "HELD"), "UID")[0].split()[1])
    reader = int(_lines(printed, "UID")[0].split()[1])
    if os.geteuid() == 0:
        # Two sandboxes alive at once never share a uid, whichever course they belong to.
        for uid in (holder, reader):
            assert SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + SANDBOX_UID_SPAN
        assert holder != reader
    else:
        assert holder == reader == os.geteuid()  # a user namespace each, the same uid mapped


@pytest.mark.parametrize("name", list(EVASIONS))
def test_each_way_to_keras_fails_its_gate_with_a_clear_message(runs, name):
    a, _b = runs
    answer, _code, message = EVASIONS[name]
    student = _student(name)
    entry = _entry(a, student)
    assert entry["status"] == "graded", entry
    assert entry["score"] == pytest.approx(_score_without(answer)), (entry, _errors(a, student))
    errors = _errors(a, student)
    assert any(message in error for error in errors.values()), errors
    if message == NOT_AVAILABLE:
        assert any("TensorFlow, Keras" in error for error in errors.values()), errors
    else:
        assert any("keras" in error or "tensorflow" in error for error in errors.values()), errors


@pytest.mark.parametrize("name", list(EVASIONS))
def test_a_correct_learner_after_each_scores_full(runs, name):
    a, _b = runs
    entry = _entry(a, _student(name).replace(f"_{name}", "z_correct"))
    assert entry["status"] == "graded", entry
    assert entry["score"] == pytest.approx(_full()), entry


def test_the_site_packages_listing_is_the_allow_list(runs):
    a, _b = runs
    printed = _printed(a, _student("listed_site_packages"), "LISTING")
    listing = set(ast.literal_eval(printed.split("LISTING", 1)[1].strip()))
    expected = {e.split("/", 1)[0] for e in visible_entries(os.path.realpath(SITE))}
    expected |= {"_classgrade_imports.py", "_classgrade_imports.pth"}
    assert listing == expected
    for forbidden in ("keras", "tensorflow", "tf_keras", "torch", "jax", "rnn_ref", "nbgrader"):
        assert not any(name.lower().startswith(forbidden) for name in listing), forbidden


def test_both_runs_graded_every_notebook(runs):
    for course in runs:
        log = _log(course)
        assert "failed 0" in log, log


# -- The uid lease and the import message, without a run ------------------------------------------

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="uids are leased only when run as root")


@pytest.fixture
def leases(tmp_path, monkeypatch):
    """A folder of leases of its own and a span of three uids nobody runs as."""
    from classgrade import sandbox

    folder = tmp_path / "uids"
    monkeypatch.setattr(sandbox, "UID_LEASES", folder)
    monkeypatch.setattr(sandbox, "SANDBOX_UID_BASE", 1_800_000_000)
    monkeypatch.setattr(sandbox, "SANDBOX_UID_SPAN", 3)
    return sandbox


@as_root
def test_a_leased_uid_is_nobody_elses_until_released(leases):
    first = leases.lease_uid(1_800_000_000)
    second = leases.lease_uid(1_800_000_000)
    assert (first.uid, second.uid) == (1_800_000_000, 1_800_000_001)
    first.release()
    assert leases.lease_uid(1_800_000_000).uid == 1_800_000_000
    third = leases.lease_uid(1_800_000_002)
    assert third.uid == 1_800_000_002
    with pytest.raises(leases.SandboxUnavailable, match="every sandbox uid is in use"):
        leases.lease_uid(1_800_000_000)


@as_root
def test_a_uid_that_still_has_a_process_is_passed_over(leases):
    alive = subprocess.Popen(["sleep", "600"], user=1_800_000_000, group=1_800_000_000)
    try:
        assert leases.lease_uid(1_800_000_000).uid == 1_800_000_001
    finally:
        alive.kill()
        alive.wait()
    assert leases.lease_uid(1_800_000_000).uid == 1_800_000_000


@as_root
def test_a_leases_folder_others_can_write_to_is_refused(leases):
    leases.UID_LEASES.mkdir(mode=0o700)
    os.chmod(leases.UID_LEASES, 0o777)
    with pytest.raises(leases.SandboxUnavailable, match="root's own"):
        leases.lease_uid(1_800_000_000)


def test_a_missing_module_says_what_the_grading_kernel_has(tmp_path):
    """The message module on its own (a copy, as in the sandbox): an import of a missing
    top-level module says what the kernel has; probing with find_spec still answers None."""
    from classgrade import sandbox

    source = sandbox.SUPPORT_FILES[f"{sandbox.IMPORT_MESSAGES}.py"]
    (tmp_path / f"{sandbox.IMPORT_MESSAGES}.py").write_bytes(source.read_bytes())
    probe = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        f"import {sandbox.IMPORT_MESSAGES}, importlib, importlib.util\n"
        "assert importlib.util.find_spec('no_such_module_here') is None\n"
        "for load in (lambda: __import__('no_such_module_here'),\n"
        "             lambda: importlib.import_module('no_such_module_here')):\n"
        "    try:\n"
        "        load()\n"
        "    except ModuleNotFoundError as exc:\n"
        "        assert exc.name == 'no_such_module_here', exc.name\n"
        "        print(exc)\n"
        "try:\n"
        "    import json.no_such_submodule\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, lines
    for line in lines[:2]:
        assert line.startswith("No module named 'no_such_module_here': " + NOT_AVAILABLE), line
    assert lines[2] == "No module named 'json.no_such_submodule'"  # a submodule: as before
