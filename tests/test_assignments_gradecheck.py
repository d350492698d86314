"""The hidden tests' checking package, in process: what it accepts, rejects and says."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import shutil
import subprocess
import sys
import warnings

import nbformat
import numpy as np
import pytest
from course import ASSIGNMENTS, ROOT
from IPython.core.events import EventManager

import rnn_ref
from gradecheck import brnn, cases, core, gru, keras_reference, lstm, rnn, substitution
from gradecheck.core import Case, GradeFailure


def _fails(check, *args, match: str):
    with pytest.raises(GradeFailure, match=match):
        check(*args)


class AlwaysEqual:
    """A result that claims to equal anything."""

    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


class LyingArray(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(self), dtype=bool)


def test_results_that_are_not_real_arrays_are_refused():
    case = Case((), "case")
    expected = np.zeros((2, 3))
    for result in (None, "0", {"h": 0}, AlwaysEqual(), np.zeros((2, 3), dtype=object)):
        with pytest.raises(GradeFailure):
            core.compare("f", result, expected, case)
    with pytest.raises(GradeFailure, match="实数"):
        core.compare("f", np.zeros((2, 3), dtype=complex), expected, case)


def test_ndarray_subclasses_are_compared_by_their_values():
    lying = np.ones((2, 3)).view(LyingArray)
    with pytest.raises(GradeFailure, match="数值不对"):
        core.compare("f", lying, np.zeros((2, 3)), Case((), "case"))


def test_float32_results_get_the_float32_tolerance():
    expected = np.linspace(-1, 1, 6).reshape(2, 3)
    nearly = expected + 2e-6
    core.compare("f", nearly.astype(np.float32), expected, Case((), "case"))
    with pytest.raises(GradeFailure):
        core.compare("f", nearly, expected, Case((), "case"))


def test_shape_is_checked_before_values():
    with pytest.raises(GradeFailure, match="形状不对"):
        core.compare("f", np.zeros((3, 2)), np.zeros((2, 3)), Case((), "case"))


def test_learner_warnings_and_stderr_stay_out_of_the_cell(capfd):
    def noisy(x):
        import sys

        print("debug output", file=sys.stderr)
        warnings.warn("deprecated", DeprecationWarning, stacklevel=1)
        return 1 / (1 + np.exp(-x))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = core.call("noisy", noisy, Case((np.array([-1000.0, 0.0]),), "case"))
    assert np.allclose(result, [0.0, 0.5])
    assert capfd.readouterr().err == ""


def test_exceptions_of_the_learner_become_messages():
    def unfinished(x):
        raise NotImplementedError()

    def broken(x):
        return x @ np.zeros((5, 5))

    with pytest.raises(GradeFailure, match="NotImplementedError"):
        core.call("unfinished", unfinished, Case((np.zeros((2, 3)),), "case"))
    with pytest.raises(GradeFailure, match="ValueError"):
        core.call("broken", broken, Case((np.zeros((2, 3)),), "case 7"))
    with pytest.raises(GradeFailure, match="不是函数"):
        core.call("missing", None, Case((), "case"))


def _learner(value):
    return lambda *args: value


def test_only_functions_defined_earlier_are_replaced():
    namespace = {"a": _learner("learner a"), "b": _learner("learner b"), "c": _learner("c")}
    correct = {"a": _learner("correct a"), "b": _learner("correct b"), "c": _learner("correct c")}
    substitution.use_correct_earlier_functions(namespace, correct, ("a", "b", "c"), "b")
    assert {name: f() for name, f in namespace.items()} == {
        "a": "correct a",
        "b": "learner b",
        "c": "c",
    }


class FakeShell:
    """What the substitution uses of an IPython shell: its user namespace and its events."""

    def __init__(self):
        self.user_ns = {}
        self.user_ns["__builtins__"] = {"get_ipython": lambda: self}
        self.events = EventManager(self, ["post_run_cell"])


def test_under_ipython_the_substitution_ends_with_the_cell():
    shell = FakeShell()
    namespace = shell.user_ns
    learner_a = _learner("learner a")
    namespace["a"] = learner_a  # "b" is not defined (the learner deleted or renamed it)
    correct = {"a": _learner("correct a"), "b": _learner("correct b")}
    order = ("a", "b", "c")
    substitution.use_correct_earlier_functions(namespace, correct, order, "c")
    substitution.use_correct_earlier_functions(namespace, correct, order, "c")  # same cell
    assert namespace["a"]() == "correct a"
    assert namespace["b"]() == "correct b"
    shell.events.trigger("post_run_cell", None)
    assert namespace["a"] is learner_a
    assert "b" not in namespace
    assert shell.events.callbacks["post_run_cell"] == []
    substitution.use_correct_earlier_functions(namespace, correct, order, "b")  # a later cell
    assert namespace["a"]() == "correct a"
    shell.events.trigger("post_run_cell", None)
    assert namespace["a"] is learner_a


class RecordingNamespace(dict):
    """A namespace that is no IPython shell's (the class-grading command's kind)."""

    def __init__(self):
        super().__init__()
        self.updates = []

    def update(self, *args, **kwargs):
        self.updates.append(dict(*args, **kwargs))
        super().update(*args, **kwargs)


def test_outside_ipython_the_substitution_is_one_namespace_update():
    namespace = RecordingNamespace()
    namespace["a"] = _learner("learner a")
    correct = {"a": _learner("correct a")}
    substitution.use_correct_earlier_functions(namespace, correct, ("a", "b"), "b")
    assert len(namespace.updates) == 1
    assert list(namespace.updates[0]) == ["a"]
    assert namespace["a"]() == "correct a"


LEARNER_SEQUENCE = """
def lstm_sequence(x, params, h0=None, c0=None):
    N, T, D = x.shape
    h = np.zeros((N, D)) if h0 is None else h0  # (N, D): right only when D == H
    c = np.zeros((N, D)) if c0 is None else c0
    outputs = []
    for t in range(T):
        h, c = lstm_step(x[:, t], h, c, params)
        outputs.append(h)
    return np.stack(outputs, axis=1)
"""


def test_a_bad_call_of_a_substituted_function_blames_the_learners_function():
    namespace = {"np": np}
    exec(LEARNER_SEQUENCE, namespace)
    with pytest.raises(GradeFailure) as failure:
        lstm.lstm_sequence(namespace["lstm_sequence"], namespace)
    message = str(failure.value)
    assert "lstm_sequence 调用 lstm_step 时传入的参数不对" in message
    assert "h_prev 的形状是 (3, 4)，应为 (N, H) = (3, 2)" in message
    assert "c_prev 的形状是 (3, 4)" in message
    assert "params" not in message


def test_the_bias_cell_of_the_rnn_step_always_passes_a_bias():
    def needs_bias(x_t, h_prev, W_xh, W_hh, b_h=None):
        return np.tanh(x_t @ W_xh + h_prev @ W_hh + b_h)

    rnn.simple_rnn_step(needs_bias, bias=True)
    with pytest.raises(GradeFailure, match="TypeError"):
        rnn.simple_rnn_step(needs_bias, bias=False)


@pytest.mark.parametrize(
    ("check", "reference"),
    [
        (lstm.forget_gate, rnn_ref.forget_gate),
        (lstm.input_gate, rnn_ref.input_gate),
        (lstm.output_gate, rnn_ref.output_gate),
        (lstm.candidate_cell_state, rnn_ref.candidate_cell_state),
        (lstm.cell_state_update, rnn_ref.cell_state_update),
        (lstm.hidden_output, rnn_ref.hidden_output),
        (gru.reset_gate, rnn_ref.reset_gate),
        (gru.update_gate, rnn_ref.update_gate),
        (gru.candidate_state, rnn_ref.candidate_state),
        (gru.new_state, rnn_ref.new_state),
        (gru.candidate_state_reset_after, rnn_ref.candidate_state_reset_after),
    ],
)
def test_the_reference_functions_pass(check, reference):
    check(reference)


def test_the_reference_step_passes_both_bias_checks():
    rnn.simple_rnn_step(rnn_ref.simple_rnn_step, bias=False)
    rnn.simple_rnn_step(rnn_ref.simple_rnn_step, bias=True)


@pytest.mark.parametrize(
    ("check", "wrong", "message"),
    [
        (lstm.forget_gate, lambda x, h, W_x, W_h, b=None: np.zeros_like(h), None),
        (
            lstm.forget_gate,
            lambda x, h, W_x, W_h, b=None: rnn_ref.forget_gate(x, h, W_x, W_h, b, "tanh"),
            "tanh and sigmoid swapped",
        ),
        (
            lstm.candidate_cell_state,
            lambda x, h, W_x, W_h, b=None: rnn_ref.candidate_cell_state(x, h, W_x, W_h),
            "bias missing",
        ),
        (
            gru.new_state,
            rnn_ref.new_state_keras,
            "update-gate convention swapped",
        ),
        (
            gru.candidate_state,
            lambda x, h, g_r, W_x, W_h, b=None: rnn_ref.candidate_state_reset_after(
                x, h, g_r, W_x, W_h, b
            ),
            "reset applied after the product",
        ),
        (
            gru.candidate_state_reset_after,
            lambda x, h, g_r, W_x, W_h, b=None, b_hh=None: rnn_ref.candidate_state(
                x, h, g_r, W_x, W_h, None if b is None else b + b_hh
            ),
            "reset applied before the product",
        ),
    ],
)
def test_wrong_functions_fail_with_the_mistake_named(check, wrong, message):
    with pytest.raises(GradeFailure, match=message or "不对"):
        check(wrong)


def test_merge_checks_every_mode():
    for mode in brnn.MERGE_MODES:
        brnn.merge_outputs(rnn_ref.merge, mode)
    with pytest.raises(GradeFailure, match="summed instead of averaged"):
        brnn.merge_outputs(lambda f, b, mode: rnn_ref.merge(f, b, "sum"), "ave")


def test_a_modified_keras_reference_file_is_refused(tmp_path):
    source = ROOT / "solutions" / "lstm" / keras_reference.FILES["lstm"]
    shutil.copy(source, tmp_path / source.name)
    assert set(keras_reference.load("lstm", tmp_path)) >= {"x", "kernel", "output"}
    with open(tmp_path / source.name, "ab") as f:
        f.write(b"\0")
    with pytest.raises(GradeFailure, match="modified"):
        keras_reference.load("lstm", tmp_path)
    (tmp_path / source.name).unlink()
    with pytest.raises(GradeFailure, match="missing"):
        keras_reference.load("lstm", tmp_path)


def test_the_large_inputs_make_a_naive_sigmoid_overflow():
    # Otherwise the graded "naive sigmoid" submissions would not test the warning capture.
    (large,) = [c for c in cases.gate_cases("lstm.forget_gate") if "1e4" in c.label]
    x_t, h_prev, W_x, W_h, b = large.args
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        np.exp(-(x_t @ W_x + h_prev @ W_h + b))


def test_checking_package_does_not_import_tensorflow():
    code = (
        "import sys, gradecheck.rnn, gradecheck.lstm, gradecheck.gru, gradecheck.brnn; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _notebook_code(assignment: str, solution: bool) -> list[ast.Module]:
    """The parsed code cells of a solution notebook: its answer cells, or its locked ones."""
    nb = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", 4)
    trees = []
    for cell in nb.cells:
        metadata = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or metadata.get("grade"):
            continue
        if bool(metadata.get("solution")) == solution:
            source = cell.source.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "")
            trees.append(ast.parse(source))
    return trees


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_graded_order_is_the_order_the_solution_notebook_defines_the_functions(assignment):
    """gradecheck's ORDER says which functions are "earlier": it must follow the notebook."""
    defined = [
        node.name
        for tree in _notebook_code(assignment, solution=True)
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    ]
    order = importlib.import_module(f"gradecheck.{assignment}").ORDER
    assert [name for name in defined if name in order] == list(order)


@pytest.mark.parametrize(
    ("assignment", "reference", "conventions"),
    [
        ("lstm", rnn_ref.LSTMParams, ()),
        ("gru", rnn_ref.GRUParams, ("reset_after", "update_convention", "b_hh")),
        ("bptt", rnn_ref.LSTMParams, ()),
        ("bptt", rnn_ref.GRUParams, ("reset_after", "update_convention", "b_hh")),
    ],
)
def test_the_notebooks_params_have_the_fields_of_gradecheck_and_rnn_ref(
    assignment, reference, conventions
):
    """The notebook's NamedTuple, gradecheck's copy and rnn_ref's parameters: the same fields.

    The checks build the notebook's NamedTuple (gradecheck's copy) and pass it to the learner's
    functions, and read a learner's NamedTuple field by field into rnn_ref's parameters.
    """
    name = reference.__name__
    (fields,) = [
        [item.target.id for item in node.body if isinstance(item, ast.AnnAssign)]
        for tree in _notebook_code(assignment, solution=False)
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == name
    ]
    params = getattr(importlib.import_module(f"gradecheck.{assignment}"), name)
    assert params.__name__ == name
    assert list(params._fields) == fields
    assert [f.name for f in dataclasses.fields(reference)] == [*fields, *conventions]


@pytest.mark.parametrize("module", [*ASSIGNMENTS, "simple_rnn", "gated"])
def test_mistake_texts_are_written_in_the_catalogue_only(module):
    """A known mistake's text is a name from gradecheck.mistakes, never a literal in a check."""
    tree = ast.parse((ROOT / "gradecheck" / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            literal = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            assert not [k for k in literal if isinstance(k, str) and "（" in k]
