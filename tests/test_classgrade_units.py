"""classgrade's parts on their own: submission checks, output caps, sanitising, the messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from classgrade import codec
from classgrade.intake import (
    SourceCell,
    SourceNotebook,
    SubmissionError,
    load_submission,
    read_submission,
    rebuild,
)
from classgrade.output_sanitising import CapOutputs, SanitizeOutputs, sanitize_html
from classgrade.sandbox import WORKDIR_IN_SANDBOX, Limits, Sandbox
from classgrade.trusted import GradingNamespace, KernelChannel, NotTransferable, run_trusted_code

ROOT = Path(__file__).resolve().parent.parent


def _source() -> SourceNotebook:
    src = SourceNotebook("hw")
    src.cells["answer"] = SourceCell("answer", "code", False, False, True, False, None)
    src.cells["test"] = SourceCell("test", "code", True, True, False, False, 2.0)
    return src


def _cell(kind, source, **nbgrader):
    cell = {"cell_type": kind, "metadata": {}, "source": source}
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    if nbgrader:
        cell["metadata"]["nbgrader"] = nbgrader
    return cell


def _write(tmp_path, data) -> object:
    path = tmp_path / "submitted" / "ann" / "hw" / "hw.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _load(tmp_path, max_bytes=10**6):
    folder = read_submission(tmp_path / "submitted", "ann", "hw", {"hw.ipynb"}, max_bytes)
    return load_submission(folder, "hw.ipynb", _source(), max_bytes)


def test_metadata_is_rebuilt_from_the_gradebook(tmp_path):
    nb = {
        "cells": [
            _cell("code", "def f(): ...", grade_id="answer", solution=True, schema_version=99),
            _cell("markdown", "cheat", grade_id="test", grade=True, points=100, locked=False),
            _cell("code", "copy", grade_id="test", grade=True, points=100),
            _cell("code", "x", grade_id="invented", grade=True, points=50),
        ],
        "metadata": {"kernelspec": {"name": "bash"}},
    }
    nb["cells"][0]["metadata"]["tags"] = ["skip-execution"]
    _write(tmp_path, nb)
    out = _load(tmp_path)
    metas = [c.metadata.get("nbgrader") for c in out.cells]
    assert metas[0]["schema_version"] == 3
    assert metas[0]["solution"]
    assert metas[1] is None  # the duplicate kept is the last one, as nbgrader does
    assert metas[2] == {
        "grade": True, "grade_id": "test", "locked": True, "schema_version": 3,
        "solution": False, "task": False, "points": 2.0,
    }  # fmt: skip
    assert out.cells[2].cell_type == "code"
    assert metas[3] is None  # unknown ids lose their metadata
    assert "tags" not in out.cells[0].metadata
    assert "kernelspec" not in out.metadata


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"cells": [', "not valid JSON"),
        ("[1, 2]", "not a notebook"),
        ('{"cells": [{"cell_type": "code", "source": 5}]}', "neither text"),
    ],
)
def test_unreadable_notebooks_get_a_plain_reason(tmp_path, content, reason):
    _write(tmp_path, content)
    with pytest.raises(SubmissionError, match=reason):
        _load(tmp_path)


def test_missing_renamed_and_oversized_notebooks(tmp_path):
    folder = tmp_path / "submitted" / "ann" / "hw"
    folder.mkdir(parents=True)
    with pytest.raises(SubmissionError, match="empty"):
        _load(tmp_path)
    (folder / "homework (1).ipynb").write_text("{}")
    with pytest.raises(SubmissionError, match=r"renamed"):
        _load(tmp_path)
    (folder / "hw.ipynb").write_text(json.dumps({"cells": [_cell("markdown", "x" * 5000)]}))
    with pytest.raises(SubmissionError, match="limit"):
        _load(tmp_path, max_bytes=1000)


def _links_and_special_files(tmp_path):
    """Each builder plants one thing intake must refuse in the submission of learner ann."""
    outside = tmp_path / "solutions.ipynb"
    outside.write_text(json.dumps({"cells": []}))

    def notebook_symlink(folder):
        (folder / "hw.ipynb").symlink_to(outside)

    def relative_symlink(folder):
        (folder / "hw.ipynb").symlink_to("../../../solutions.ipynb")

    def timestamp_symlink(folder):
        (folder / "timestamp.txt").symlink_to(outside)

    def extra_symlink(folder):
        (folder / "passwd").symlink_to("/etc/passwd")

    def fifo_notebook(folder):
        os.mkfifo(folder / "hw.ipynb")

    def fifo_extra(folder):
        os.mkfifo(folder / "pipe")

    def hard_link(folder):
        os.link(outside, folder / "hw.ipynb")

    def socket_file(folder):
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(folder / "sock"))
        sock.close()

    def folder_symlink(folder):
        folder.rmdir()
        other = tmp_path / "elsewhere"
        other.mkdir()
        folder.symlink_to(other)

    def learner_symlink(folder):
        learner = folder.parent
        folder.rmdir()
        learner.rmdir()
        (tmp_path / "other" / "hw").mkdir(parents=True)
        learner.symlink_to(tmp_path / "other")

    return {
        "notebook_symlink": (notebook_symlink, "symbolic link"),
        "relative_symlink": (relative_symlink, "symbolic link"),
        "timestamp_symlink": (timestamp_symlink, "symbolic link"),
        "extra_symlink": (extra_symlink, "symbolic link"),
        "fifo_notebook": (fifo_notebook, "FIFO"),
        "fifo_extra": (fifo_extra, "FIFO"),
        "hard_link": (hard_link, "hard link"),
        "socket_file": (socket_file, "socket"),
        "folder_symlink": (folder_symlink, "symbolic link"),
        "learner_symlink": (learner_symlink, "symbolic link"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "notebook_symlink", "relative_symlink", "timestamp_symlink", "extra_symlink",
        "fifo_notebook", "fifo_extra", "hard_link", "socket_file", "folder_symlink",
        "learner_symlink",
    ],
)  # fmt: skip
def test_intake_follows_no_link_and_reads_no_special_file(tmp_path, case):
    folder = tmp_path / "submitted" / "ann" / "hw"
    folder.mkdir(parents=True)
    build, reason = _links_and_special_files(tmp_path)[case]
    build(folder)
    with pytest.raises(SubmissionError, match=reason):
        read_submission(tmp_path / "submitted", "ann", "hw", {"hw.ipynb", "timestamp.txt"}, 10**6)


def test_intake_limits_files_depth_and_timestamp(tmp_path, monkeypatch):
    from classgrade import intake

    folder = tmp_path / "submitted" / "ann" / "hw"
    deep = folder
    for _ in range(intake.MAX_DEPTH + 2):
        deep = deep / "d"
    deep.mkdir(parents=True)
    with pytest.raises(SubmissionError, match="nested"):
        read_submission(tmp_path / "submitted", "ann", "hw", set(), 10**6)
    import shutil

    shutil.rmtree(folder / "d")
    monkeypatch.setattr(intake, "MAX_ENTRIES", 50)
    for i in range(51):
        (folder / f"f{i}").write_text("x")
    with pytest.raises(SubmissionError, match="more than 50 files"):
        read_submission(tmp_path / "submitted", "ann", "hw", set(), 10**6)
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "timestamp.txt").write_text("2026-01-01 " * 1000)
    with pytest.raises(SubmissionError, match="not a timestamp"):
        read_submission(tmp_path / "submitted", "ann", "hw", {"timestamp.txt"}, 10**6)


def _ordered_source() -> SourceNotebook:
    src = SourceNotebook("hw")
    src.cells["setup"] = SourceCell("setup", "code", True, False, False, False, None, "import x")
    src.cells["a1"] = SourceCell("a1", "code", False, False, True, False, None)
    src.cells["t1"] = SourceCell("t1", "code", True, True, False, False, 1.0, "check(f1)")
    src.cells["a2"] = SourceCell("a2", "code", False, False, True, False, None)
    src.cells["t2"] = SourceCell("t2", "code", True, True, False, False, 1.0, "check(f2)")
    return src


def test_instructor_cells_run_in_the_source_order_with_the_learner_cells_they_followed():
    cells = [
        _cell("code", "check(f2)", grade_id="t2"),  # the last test moved to the top
        _cell("code", "mine = 1"),  # the learner's own cell, after it
        _cell("code", "def f1(): ...", grade_id="a1"),
        _cell("code", "helper = 2"),
        _cell("code", "def f2(): ...", grade_id="a2"),
        _cell("code", "check(f1)", grade_id="t1"),
    ]  # the setup cell was deleted
    nb = rebuild({"cells": cells}, _ordered_source())
    order = [c.metadata.get("nbgrader", {}).get("grade_id") or c.source for c in nb.cells]
    assert order == ["setup", "a1", "helper = 2", "t1", "a2", "t2", "mine = 1"]
    assert nb.cells[0].source == "import x"  # restored from the gradebook


def test_outputs_are_capped_in_bytes():
    cell = nbformat.v4.new_code_cell("print()")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="x" * 1_000_000),
        nbformat.v4.new_output("display_data", data={"text/html": "<b>" * 500_000}),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb, _ = CapOutputs(max_output_bytes=10_000, max_cell_bytes=30_000).preprocess(nb, {})
    sizes = [len(json.dumps(o)) for o in nb.cells[0].outputs]
    assert all(s < 12_000 for s in sizes)
    assert "cut to fit" in nb.cells[0].outputs[0].text


def test_scripts_and_handlers_are_removed_from_outputs_and_markdown():
    assert "onerror" not in sanitize_html('<img src="x" onerror="alert(1)">')
    assert "<script>" not in sanitize_html("<script>alert(1)</script>")
    code = nbformat.v4.new_code_cell("")
    code.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "text/html": "<b>ok</b><script>x()</script>",
                "application/javascript": "x()",
                "image/svg+xml": "<svg onload='x()'/>",
            },
        )
    ]
    md = nbformat.v4.new_markdown_cell('<a href="javascript:x()">a</a><iframe src="x"></iframe>')
    nb = nbformat.v4.new_notebook(cells=[code, md])
    nb, _ = SanitizeOutputs().preprocess(nb, {})
    data = nb.cells[0].outputs[0].data
    assert set(data) == {"text/html"}
    assert "<script>" not in data["text/html"]
    assert "<b>ok</b>" in data["text/html"]
    assert "javascript:" not in nb.cells[1].source
    assert "<iframe" not in nb.cells[1].source


def _raw_frame(header: dict, body: bytes) -> bytes:
    head = json.dumps(header).encode()
    return codec._PREFIX.pack(codec.MAGIC, len(head), len(body)) + head + body


@pytest.fixture
def pair():
    import socket

    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_frames_carry_only_declared_numeric_arrays(pair):
    import time

    a, b = pair
    arr = np.arange(6.0).reshape(2, 3)
    codec.send_frame(
        a, {"status": "ok", "value": {"__array__": "a0"}}, {"a0": arr}, time.monotonic() + 5
    )
    _payload, arrays = codec.recv_frame(b, time.monotonic() + 5)
    np.testing.assert_array_equal(arrays["a0"], arr)
    odd = {"zero_d": np.float64(2.5), "empty": np.zeros((0, 3)), "strided": arr.T, "c": 1j * arr}
    codec.send_frame(a, {}, odd, time.monotonic() + 5)
    _payload, back = codec.recv_frame(b, time.monotonic() + 5)
    for key, value in odd.items():
        assert back[key].shape == np.shape(value), key
        np.testing.assert_array_equal(back[key], value)
    bad = [
        _raw_frame({"payload": {}, "arrays": [["a0", "|O", [1], 0, 8]]}, b"\0" * 8),
        _raw_frame({"payload": {}, "arrays": [["a0", "<f8", [100], 0, 8]]}, b"\0" * 8),
        _raw_frame({"payload": {}, "arrays": [["a0", "V8", [1], 0, 8]]}, b"\0" * 8),
        _raw_frame({"payload": [], "arrays": []}, b""),
        b"NOPE" + b"\0" * 16,
        codec._PREFIX.pack(codec.MAGIC, codec.MAX_HEADER_BYTES + 1, 0),
        codec._PREFIX.pack(codec.MAGIC, 2, codec.MAX_FRAME_BYTES + 1),
    ]
    for raw in bad:
        a.sendall(raw)
        with pytest.raises(codec.FrameError):
            codec.recv_frame(b, time.monotonic() + 5)
        while True:  # drop what is left of the bad frame
            try:
                b.recv(1 << 16)
            except BlockingIOError:
                break


def test_every_read_of_the_channel_has_a_deadline(pair):
    import time

    a, b = pair
    a.sendall(codec._PREFIX.pack(codec.MAGIC, 10, 0) + b"{")  # a frame that never completes
    with pytest.raises(codec.FrameTimeout):
        codec.recv_frame(b, time.monotonic() + 0.2)


class _Link:
    def __init__(self, kernel_end, answers):
        self.kernel_end = kernel_end
        self.answers = answers

    def announce(self, request_id):
        import time

        for header in self.answers:
            header = {"kind": "final", "id": request_id, **header}
            codec.send_frame(self.kernel_end, header, {}, time.monotonic() + 5)

    def alive(self):
        return True

    def interrupt(self):
        pass


@pytest.mark.parametrize(
    "value",
    [
        {"__module__": "os"},
        {"__import__": "os", "attr": "system"},
        {"__class__": "subprocess.Popen"},
        {"__namedtuple__": "P", "fields": ["__class__"], "values": [1]},
        {"__namedtuple__": "P", "fields": ["a b"], "values": [1]},
        {"__array__": "missing"},
        {"__handle__": "os.system"},
    ],
)
def test_what_the_kernel_sends_decodes_to_plain_data_only(pair, value):
    ours, theirs = pair
    channel = KernelChannel(ours, _Link(theirs, [{"status": "ok", "value": value}]), 5.0)
    with pytest.raises(NotTransferable):
        channel.fetch("anything")


def test_a_module_returned_by_the_kernel_is_reported_not_imported(pair):
    ours, theirs = pair
    answer = {"status": "unencodable", "what": "a module (pwn)"}
    channel = KernelChannel(ours, _Link(theirs, [answer]), 5.0)
    with pytest.raises(NotTransferable, match="not a function or plain data"):
        channel.fetch("pwn")


def test_the_grading_process_keeps_the_course_folder_off_sys_path(tmp_path, monkeypatch):
    from classgrade.notebook_job import _trusted_sys_path

    course = tmp_path / "course"
    (course / "submitted").mkdir(parents=True)
    monkeypatch.chdir(course)
    venv = course / ".venv" / "lib" / "site-packages"
    paths = ["", ".", str(course), str(course / "submitted"), str(course / "submitted" / "ann"),
             str(venv), str(tmp_path / "lib")]  # fmt: skip
    monkeypatch.setattr("sys.path", paths)
    kept = _trusted_sys_path("/imports", str(course), [str(course / "submitted")])
    assert kept == ["/imports", str(venv), str(tmp_path / "lib")]


class _NoKernel:
    """A channel whose kernel has nothing: every lookup must stay in the grader."""

    def __init__(self):
        self.asked = []

    def fetch(self, name):
        self.asked.append(name)
        return False, None


def test_grade_code_runs_in_the_grader_and_reports_stderr_as_stdout():
    channel = _NoKernel()
    ns = GradingNamespace(channel)
    outputs = run_trusted_code(
        "import sys, warnings\nprint('x', file=sys.stderr)\nwarnings.warn('w')\nlen([1])\n1.5",
        ns,
        "t",
    )
    assert [o["output_type"] for o in outputs] == ["stream", "execute_result"]
    assert outputs[0]["name"] == "stdout"
    assert outputs[1]["data"]["text/plain"] == "1.5"
    assert channel.asked == []  # builtins (print, len) never come from the kernel
    error = run_trusted_code("undefined_name", ns, "t")
    assert error[-1]["ename"] == "NameError"
    assert len(error[-1]["traceback"]) == 1


def test_sandbox_command_hides_the_course_and_sets_limits(tmp_path):
    sandbox = Sandbox(Limits(memory_mb=1000, processes=50))
    argv = sandbox.command(tmp_path, ["python"])
    text = " ".join(argv)
    assert "--unshare-net" in argv
    assert "--unshare-pid" in argv
    assert "--die-with-parent" in argv
    assert WORKDIR_IN_SANDBOX in text
    assert "--tmpfs " + WORKDIR_IN_SANDBOX in text
    assert '"address_space": 1048576000' in text
    assert '"processes": 50' in text
    # No folder bound into the sandbox holds the home folders or this checkout's solutions.
    bound = [Path(argv[i + 1]) for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")]
    for hidden in (Path("/home"), Path("/root"), Path.home(), ROOT / "solutions"):
        assert not [b for b in bound if hidden.is_relative_to(b)], hidden


def test_only_a_sandbox_of_its_own_lets_the_shim_kill_every_process_it_can(tmp_path):
    """On its lifeline's end the shim kills all it can signal: never outside a PID namespace."""
    outside = Sandbox(Limits(), enabled=False).command(tmp_path, ["python"], lifeline_fd=5)
    inside = Sandbox(Limits()).command(tmp_path, ["python"], lifeline_fd=5)
    assert json.loads(outside[outside.index("--") - 1])["own_pid_namespace"] is False
    assert json.loads(inside[inside.index("--", inside.index("--chdir")) + 4])["own_pid_namespace"]


def test_a_later_run_reaps_what_a_dead_run_left(tmp_path, monkeypatch):
    """A run that no longer exists: its recorded sandbox process is killed, its scratch removed."""
    import psutil

    from classgrade import reaper

    monkeypatch.setattr(reaper.tempfile, "gettempdir", lambda: str(tmp_path))
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f"{reaper.SCRATCH_PREFIX}{int(finished.stdout)}.12345"
    live = reaper.scratch_root(reaper.run_token())
    other = tmp_path / "unrelated"
    for folder in (stale / "job-1-0", live / "job-1-0", other):
        folder.mkdir(parents=True)
    left_behind = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    reaper.record_sandbox(stale / "job-1-0", left_behind.pid)
    assert reaper.reap_stale(None) == 1
    assert left_behind.wait(timeout=60) == -9
    assert not stale.exists()
    assert live.exists()
    assert other.exists()
    assert psutil.pid_exists(os.getpid())


# -- the grading channel's protocol, as both halves speak it ----------------------------------

_PROTOCOL_FIELDS = ("op", "status", "kind")


def _protocol_literals(path: Path) -> list[str]:
    """Protocol words written as literals in ``path`` rather than taken from ``channel``.

    A literal compared with something, or the value of an ``op``/``status``/``kind`` field.
    """
    import ast

    from classgrade import channel

    words = {*channel.OPERATIONS, *channel.KINDS, *channel.STATUSES}
    words |= {channel.REQUEST_MESSAGE, channel.REPLY_MESSAGE, channel.PROBE_MODULE}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        values: list[ast.expr] = []
        if isinstance(node, ast.Compare):
            values = [node.left, *node.comparators]
        elif isinstance(node, ast.Dict):
            values = [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value in _PROTOCOL_FIELDS
            ]
        elif isinstance(node, ast.Call):
            values = list(node.args)
        found += [
            f"{path.name}:{v.lineno} {v.value!r}"
            for v in values
            if isinstance(v, ast.Constant) and v.value in words
        ]
    return found


def test_both_halves_of_the_channel_take_the_protocol_from_one_module():
    """The kernel's half gets the protocol module shipped beside it, and neither half spells it."""
    import ast

    from classgrade import channel, sandbox

    package = ROOT / "classgrade"
    shipped = {name: path.resolve() for name, path in sandbox.SUPPORT_FILES.items()}
    assert shipped[f"{channel.PROBE_MODULE}.py"] == package / "_probe.py"
    assert shipped["_classgrade_channel.py"] == package / "channel.py"
    assert shipped["_classgrade_codec.py"] == package / "codec.py"
    # The protocol module runs alone in the sandbox: it imports nothing.
    tree = ast.parse((package / "channel.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    # The probe imports only what the sandbox has: the shipped modules, the standard library,
    # NumPy and IPython; never classgrade itself.
    probe = ast.parse((package / "_probe.py").read_text())
    for node in ast.walk(probe):  # what only the type checker reads never runs in the kernel
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    imported = {
        alias.name.split(".")[0]
        for n in ast.walk(probe)
        if isinstance(n, ast.Import)
        for alias in n.names
    } | {n.module.split(".")[0] for n in ast.walk(probe) if isinstance(n, ast.ImportFrom)}
    allowed = {Path(name).stem for name in shipped} | set(sys.stdlib_module_names)
    assert imported - allowed == {"numpy", "IPython"}
    assert {"_classgrade_channel", "_classgrade_codec"} <= imported
    for words in (channel.OPERATIONS, channel.KINDS, channel.STATUSES):
        assert len(set(words)) == len(words)
    spelled = [
        hit
        for name in ("_probe.py", "trusted.py", "executor.py")
        for hit in _protocol_literals(package / name)
        if not (name == "executor.py" and hit.endswith("'ok'"))  # Jupyter's own reply status
    ]
    assert spelled == []


def test_the_protocol_check_finds_a_spelled_out_status(tmp_path):
    """The check above fails on the literals it looks for."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        'if status == "missing":\n    pass\nanswer = {"kind": "final", "callback": 1}\n'
        'send("classgrade_request")\n'
    )
    assert [hit.split(" ", 1)[1] for hit in _protocol_literals(sample)] == [
        "'missing'",
        "'final'",
        "'classgrade_request'",
    ]


# -- the preprocessor lists -------------------------------------------------------------------


def test_nbgraders_optional_preprocessors_run_when_the_course_enables_them():
    """IgnorePattern and ClearMetadataPreprocessor are off by default, as in nbgrader."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import IgnorePattern, SaveAutoGrades
    from traitlets.config import Config

    from classgrade import preprocessors

    default = [type(pp) for pp in preprocessors.recording(Config())]
    assert default[0] is SaveAutoGrades
    assert IgnorePattern not in default
    assert ClearMetadataPreprocessor not in default
    config = Config()
    config.IgnorePattern.enabled = True
    config.IgnorePattern.pattern = "WARNING"
    config.ClearMetadataPreprocessor.enabled = True
    enabled = [type(pp) for pp in preprocessors.recording(config)]
    assert enabled[:3] == [IgnorePattern, ClearMetadataPreprocessor, SaveAutoGrades]
    # A course cannot switch the sanitising preprocessors off.
    config.ClearOutput.enabled = False
    assert "ClearOutput" in [type(pp).__name__ for pp in preprocessors.sanitizing(config)]


def test_a_sandboxed_kernel_gets_the_client_that_waits_no_longer_than_its_answer():
    from classgrade.sandbox import SandboxKernelClient, SandboxKernelManager

    assert isinstance(SandboxKernelManager().client(), SandboxKernelClient)
