"""classgrade's parts on their own: submission checks, output caps, sanitising, the messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from classgrade.preprocessors import (
    CapOutputs,
    SanitizeOutputs,
    SourceCell,
    SourceNotebook,
    SubmissionError,
    load_submission,
    sanitize_html,
)
from classgrade.sandbox import Limits, Sandbox
from classgrade.trusted import (
    GradingNamespace,
    KernelUnavailable,
    NotTransferable,
    read_message,
    run_trusted_code,
    write_message,
)


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
    path = tmp_path / "sub" / "hw.ipynb"
    path.parent.mkdir(exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


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
    out = load_submission(_write(tmp_path, nb), _source(), 10**6)
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
    with pytest.raises(SubmissionError, match=reason):
        load_submission(_write(tmp_path, content), _source(), 10**6)


def test_missing_renamed_and_oversized_notebooks(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    with pytest.raises(SubmissionError, match="empty"):
        load_submission(folder / "hw.ipynb", _source(), 10**6)
    (folder / "homework (1).ipynb").write_text("{}")
    with pytest.raises(SubmissionError, match=r"renamed"):
        load_submission(folder / "hw.ipynb", _source(), 10**6)
    (folder / "hw.ipynb").write_text(json.dumps({"cells": [_cell("markdown", "x" * 5000)]}))
    with pytest.raises(SubmissionError, match="limit"):
        load_submission(folder / "hw.ipynb", _source(), 1000)


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


def test_messages_from_the_kernel_carry_only_declared_numeric_arrays(tmp_path):
    path = str(tmp_path / "m")
    arr = np.arange(6.0).reshape(2, 3)
    write_message(path, {"status": "ok", "value": {"__array__": "a0"}}, {"a0": arr})
    _payload, arrays = read_message(path)
    np.testing.assert_array_equal(arrays["a0"], arr)
    header = {"payload": {"status": "ok"}, "arrays": [["a0", "|O", [1], 0, 8]]}
    (tmp_path / "bad").write_bytes(json.dumps(header).encode() + b"\n" + b"\0" * 8)
    with pytest.raises(NotTransferable):
        read_message(str(tmp_path / "bad"))
    header = {"payload": {"status": "ok"}, "arrays": [["a0", "<f8", [100], 0, 8]]}
    (tmp_path / "short").write_bytes(json.dumps(header).encode() + b"\n" + b"\0" * 8)
    with pytest.raises(KernelUnavailable):
        read_message(str(tmp_path / "short"))


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
    assert str(tmp_path / "work") in text
    assert '"address_space": 1048576000' in text
    assert '"processes": 50' in text
    for hidden in ("/home", "/work/main/solutions", "/root "):
        assert f"--ro-bind {hidden}" not in text


def test_scratch_of_finished_workers_is_removed(tmp_path, monkeypatch):
    """A killed run leaves its workers' scratch folders; the next worker removes them."""
    from classgrade import worker

    monkeypatch.setattr(worker.tempfile, "gettempdir", lambda: str(tmp_path))
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(finished.stdout)
    stale = tmp_path / f"{worker.SCRATCH_PREFIX}{dead_pid}-abc"
    live = tmp_path / f"{worker.SCRATCH_PREFIX}{os.getpid()}-def"
    other = tmp_path / "unrelated"
    for folder in (stale, live, other):
        (folder / "work").mkdir(parents=True)
    worker.remove_stale_scratch()
    assert not stale.exists()
    assert live.exists()
    assert other.exists()
