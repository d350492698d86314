"""The hidden tests' checking package, in process: what it accepts, rejects and says."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
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


A, B, C = "hidden_output", "cell_state_update", "new_state"
"""Three graded functions' names (the substitution knows the notebook's signatures)."""


def _called(function, name: str):
    """``function`` called with as many arguments as the notebook's ``name`` takes."""
    return function(*range(len(substitution.SIGNATURES[name])))


def test_every_other_graded_function_is_replaced():
    namespace = {A: _learner("learner a"), B: _learner("learner b"), C: _learner("c")}
    correct = {A: _learner("correct a"), B: _learner("correct b"), C: _learner("correct c")}
    substitution.use_correct_functions(namespace, correct, B)
    assert {name: _called(f, name) for name, f in namespace.items()} == {
        A: "correct a",
        B: "learner b",
        C: "correct c",
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
    namespace[A] = learner_a  # B is not defined (the learner deleted or renamed it)
    correct = {A: _learner("correct a"), B: _learner("correct b")}
    substitution.use_correct_functions(namespace, correct, C)
    substitution.use_correct_functions(namespace, correct, C)  # same cell
    assert _called(namespace[A], A) == "correct a"
    assert _called(namespace[B], B) == "correct b"
    shell.events.trigger("post_run_cell", None)
    assert namespace[A] is learner_a
    assert B not in namespace
    assert shell.events.callbacks["post_run_cell"] == []
    substitution.use_correct_functions(namespace, correct, B)  # a later cell
    assert _called(namespace[A], A) == "correct a"
    shell.events.trigger("post_run_cell", None)
    assert namespace[A] is learner_a


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
    namespace[A] = _learner("learner a")
    correct = {A: _learner("correct a"), B: _learner("correct b")}
    substitution.use_correct_functions(namespace, correct, B)
    assert len(namespace.updates) == 1
    assert list(namespace.updates[0]) == [A]
    assert _called(namespace[A], A) == "correct a"


def _step_stand_in(learner_source: str | None):
    """The correct simple_rnn_step as the sequence's check installs it beside ``learner``."""
    namespace = {"np": np}
    if learner_source:
        exec(learner_source, namespace)
    substitution.use_correct_functions(namespace, rnn.correct_functions(), "simple_rnn_sequence")
    return namespace["simple_rnn_step"]


STEP_ARGS = {
    "x_t": np.ones((2, 3)),
    "h_prev": np.zeros((2, 4)),
    "W_xh": np.full((3, 4), 0.1),
    "W_hh": np.eye(4),
    "b_h": np.arange(4.0),
}
STEP_EXPECTED = rnn_ref.simple_rnn_step(*STEP_ARGS.values())


@pytest.mark.parametrize(
    ("learner", "call"),
    [
        # The notebook's signature, called by keyword (the stand-in once took other names).
        ("def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None): pass", lambda f, a: f(**a)),
        (None, lambda f, a: f(**a)),
        # Renamed parameters, called with the learner's own names.
        (
            "def simple_rnn_step(x, h, Wx, Wh, b=None): pass",
            lambda f, a: f(x=a["x_t"], h=a["h_prev"], Wx=a["W_xh"], Wh=a["W_hh"], b=a["b_h"]),
        ),
        # The notebook's names in another order: read by name, not by position.
        (
            "def simple_rnn_step(h_prev, x_t, W_hh, W_xh, b_h=None): pass",
            lambda f, a: f(a["h_prev"], a["x_t"], a["W_hh"], a["W_xh"], a["b_h"]),
        ),
        # Keyword-only parameters, and an extra parameter left at its default.
        (
            "def simple_rnn_step(x_t, h_prev, *, W_xh, W_hh, b_h=None, debug=False): pass",
            lambda f, a: f(a["x_t"], a["h_prev"], W_xh=a["W_xh"], W_hh=a["W_hh"], b_h=a["b_h"]),
        ),
        # A learner's default the notebook does not have.
        (
            "def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=np.arange(4.0)): pass",
            lambda f, a: f(a["x_t"], a["h_prev"], a["W_xh"], a["W_hh"]),
        ),
        ("def simple_rnn_step(*args, **kwargs): pass", lambda f, a: f(*a.values())),
        # Not a function: a class bound to the name takes nothing from the stand-in.
        ("simple_rnn_step = type('Step', (), {})", lambda f, a: f(**a)),
        ("simple_rnn_step = 3", lambda f, a: f(*a.values())),
    ],
)
def test_a_stand_in_accepts_exactly_what_the_learners_function_accepts(learner, call):
    stand_in = _step_stand_in(learner)
    np.testing.assert_allclose(call(stand_in, STEP_ARGS), STEP_EXPECTED)


@pytest.mark.parametrize(
    ("learner", "call", "reason"),
    [
        (None, lambda f, a: f(x=a["x_t"], **a), "unexpected keyword argument 'x'"),
        (
            "def simple_rnn_step(x, h, Wx, Wh, b=None): pass",
            lambda f, a: f(**a),  # the notebook's names, which the learner's function refuses
            "missing a required argument: 'x'",
        ),
        (
            "def simple_rnn_step(x_t, h_prev, *, W_xh, W_hh, b_h=None): pass",
            lambda f, a: f(*a.values()),
            "positional argument",
        ),
        (None, lambda f, a: f(a["x_t"], a["h_prev"]), "missing a required argument"),
        (
            "def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None, scale=1.0): pass",
            lambda f, a: f(*a.values(), 2.0),
            "no parameter like scale",
        ),
    ],
)
def test_a_call_the_learners_function_would_refuse_is_reported_as_such(learner, call, reason):
    stand_in = _step_stand_in(learner)
    with pytest.raises(substitution.WrongCall) as failure:
        call(stand_in, STEP_ARGS)
    message = str(failure.value)
    assert "simple_rnn_sequence called simple_rnn_step with arguments it does not accept" in message
    assert reason in message


def test_every_graded_function_has_a_correct_version_with_the_notebooks_signature():
    for assignment in ASSIGNMENTS:
        module = importlib.import_module(f"gradecheck.{assignment}")
        assert set(module.correct_functions()) == set(module.ORDER), assignment
        for name, function in module.correct_functions().items():
            notebook = substitution.notebook_signature(name)
            required = [p for p in notebook.parameters.values() if p.default is p.empty]
            inspect.signature(function).bind(*required)  # takes them in the notebook's order


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_substitution_knows_the_notebooks_signatures(assignment):
    """Each graded function's parameters and defaults, as the solution notebook defines them."""
    order = importlib.import_module(f"gradecheck.{assignment}").ORDER
    for tree in _notebook_code(assignment, solution=True):
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in order:
                source = ast.unparse(node.args)
                expected = str(substitution.notebook_signature(node.name))
                assert f"({source})".replace("'", '"') == expected.replace("'", '"')


def test_every_grade_cell_passes_the_notebooks_namespace():
    """So that every function is scored alone: its grade cell substitutes the others."""
    for assignment in ASSIGNMENTS:
        nb = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", 4)
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code":
                calls = [
                    node
                    for node in ast.walk(ast.parse(cell.source))
                    if isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and getattr(node.func.value, "id", None) == "grade"
                ]
                assert calls, cell.metadata["nbgrader"]["grade_id"]
                for node in calls:
                    assert ast.unparse(node.args[1]) == "globals()", ast.unparse(node)


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

    rnn.simple_rnn_step(needs_bias, None, bias=True)
    with pytest.raises(GradeFailure, match="TypeError"):
        rnn.simple_rnn_step(needs_bias, None, bias=False)


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
    check(reference, None)


def test_the_reference_step_passes_both_bias_checks():
    rnn.simple_rnn_step(rnn_ref.simple_rnn_step, None, bias=False)
    rnn.simple_rnn_step(rnn_ref.simple_rnn_step, None, bias=True)


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
        check(wrong, None)


def test_merge_checks_every_mode():
    for mode in brnn.MERGE_MODES:
        brnn.merge_outputs(rnn_ref.merge, None, mode)
    with pytest.raises(GradeFailure, match="summed instead of averaged"):
        brnn.merge_outputs(lambda f, b, mode: rnn_ref.merge(f, b, "sum"), None, "ave")


def test_a_modified_keras_reference_file_is_refused(tmp_path, monkeypatch):
    source = keras_reference.path("lstm")
    shutil.copy(source, tmp_path / source.name)
    monkeypatch.setattr(keras_reference, "DATA", tmp_path)
    assert set(keras_reference.load("lstm")) >= {"x", "kernel", "output"}
    with open(tmp_path / source.name, "ab") as f:
        f.write(b"\0")
    with pytest.raises(GradeFailure, match="modified"):
        keras_reference.load("lstm")
    (tmp_path / source.name).unlink()
    with pytest.raises(GradeFailure, match="missing"):
        keras_reference.load("lstm")


def test_the_hidden_tests_never_read_a_file_beside_the_notebook(tmp_path, monkeypatch):
    """A learner who hands in a keras_lstm_reference.npz of their own moves no target."""
    expected = keras_reference.load("lstm")
    fake = {name: np.zeros_like(value) for name, value in expected.items()}
    np.savez(tmp_path / keras_reference.FILES["lstm"], **fake)
    monkeypatch.chdir(tmp_path)
    loaded = keras_reference.load("lstm")
    assert all(np.array_equal(loaded[name], expected[name]) for name in expected)


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
