"""Hidden tests of the ``bptt`` assignment: the backward passes of the simple RNN, LSTM and GRU.

Every function the learner writes returns gradients. Each is compared, output by output, with
the vector–Jacobian products of :mod:`rnn_ref` on seeded cases. A wrong gradient is matched
against the common backward mistakes: each cell's backward pass is written here once more with
switches that make one mistake each (``_rnn_step``, ``_bptt``, ``_lstm_step``, ``_gru_step``);
with every switch off it is the correct pass that replaces the learner's other functions while
one is checked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np

import rnn_ref as ref
from rnn_ref import bptt as ref_bptt
from rnn_ref import lstm_backward as ref_lstm
from rnn_ref.gru_backward import gru_step_backward as ref_gru_step_backward
from rnn_ref.keras_weights import GRU_LAYOUT, LSTM_LAYOUT
from rnn_ref.simple_rnn_backward import simple_rnn_step_backward as ref_rnn_step_backward

from . import cases as c
from . import mistakes as m
from .core import Case, call, compare, fail
from .gated import NotebookParams, params_tuple
from .substitution import scored_alone

ORDER = (
    "simple_rnn_step_backward",
    "simple_rnn_bptt",
    "forget_gate_backward",
    "input_gate_backward",
    "candidate_cell_state_backward",
    "output_gate_backward",
    "hidden_output_backward",
    "cell_state_update_backward",
    "lstm_step_backward",
    "gru_step_backward",
)
"""The graded functions in the order the notebook defines them."""

LSTMParams = params_tuple("LSTMParams", LSTM_LAYOUT)
"""The notebook's LSTM parameters: same fields, same order as ``rnn_ref.LSTMParams``."""

GRUParams = params_tuple("GRUParams", GRU_LAYOUT)
"""The notebook's GRU parameters (the notes' GRU): same fields as ``rnn_ref.GRUParams``."""

Gradients = tuple[Any, ...]
"""A backward function's results: arrays, and for a step the weights' gradients last."""


# -- correct versions of the notebook's functions, for the later checks --------------------------


def _arrays(shapes: dict[str, str], values: tuple[Any, ...]) -> list[np.ndarray]:
    """The arguments as float64 arrays; ValueError unless their shapes agree with ``shapes``.

    ``shapes`` maps each argument to its dims (``"NH"``); a correct function that replaces the
    learner's raises this for a bad call, which the substitution reports as the caller's.
    """
    arrays = [np.asarray(v, dtype=np.float64) for v in values]
    sizes: dict[str, int] = {}
    for (name, dims), array in zip(shapes.items(), arrays, strict=True):
        if array.ndim != len(dims):
            raise ValueError(f"{name} has {array.ndim} dimensions, not {len(dims)}")
        for dim, size in zip(dims, array.shape, strict=True):
            if sizes.setdefault(dim, size) != size:
                raise ValueError(f"{name} has shape {array.shape}")
    return arrays


def _correct_bptt(*args: object) -> Gradients:
    dims = {"dh_seq": "NTH", "x": "NTD", "h0": "NH", "h_seq": "NTH", "W_xh": "DH", "W_hh": "HH"}
    dh_seq, x, h0, h_seq, W_xh, W_hh = _arrays(dims, args)
    return _bptt(dh_seq, x, h0, h_seq, W_xh, W_hh)


def _correct_gate(derivative: str) -> Callable[..., Gradients]:
    dims = {"d_gate": "NH", "x_t": "ND", "h_prev": "NH", "g": "NH", "W_x": "DH", "W_h": "HH"}

    def backward(
        d_gate: object, x_t: object, h_prev: object, g: object, W_x: object, W_h: object
    ) -> Gradients:
        d, x, h, out, w_x, w_h = _arrays(dims, (d_gate, x_t, h_prev, g, W_x, W_h))
        return _gate(d, x, h, out, w_x, w_h, derivative)

    return backward


def correct_functions() -> dict[str, Callable[..., Any]]:
    """A correct version of every graded function, with the notebook's parameters."""
    return {
        "simple_rnn_step_backward": _correct_gate("tanh"),
        "simple_rnn_bptt": _correct_bptt,
        "forget_gate_backward": _correct_gate("sigmoid"),
        "input_gate_backward": _correct_gate("sigmoid"),
        "candidate_cell_state_backward": _correct_gate("tanh"),
        "output_gate_backward": _correct_gate("sigmoid"),
        "hidden_output_backward": lambda dh_t, g_o, c_t: tuple(
            ref_lstm.hidden_output_backward(dh_t, g_o, c_t)
        ),
        "cell_state_update_backward": lambda dc_t, c_prev, g_f, g_i, c_bar: tuple(
            ref_lstm.cell_state_update_backward(dc_t, c_prev, g_f, g_i, c_bar)
        ),
        "lstm_step_backward": _correct_lstm_step,
        "gru_step_backward": lambda dh_t, x_t, h_prev, params: _as_params(
            _gru_step(dh_t, x_t, h_prev, params), GRUParams
        ),
    }


def _correct_lstm_step(
    dh_t: np.ndarray,
    dc_t: np.ndarray,
    x_t: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    params: NotebookParams,
) -> Gradients:
    reference = ref.LSTMParams(**{f: getattr(params, f) for f in LSTM_FIELDS})
    g = ref_lstm.lstm_step_backward(dh_t, dc_t, x_t, h_prev, c_prev, reference)
    grads = LSTMParams(**{f: getattr(g.params, f) for f in LSTM_FIELDS})
    return g.dx_t, g.dh_prev, g.dc_prev, grads


def _as_params(gradients: Gradients, params_type: type[Any]) -> Gradients:
    *states, grads = gradients
    return (*states, params_type(**grads))


# -- checking a function that returns several gradients ------------------------------------------


def _outputs(name: str, result: object, names: tuple[str, ...]) -> tuple[Any, ...]:
    if not isinstance(result, tuple | list) or len(result) != len(names):
        kind = type(result).__name__
        fail(
            f"{name} 应该返回 {len(names)} 个结果 ({', '.join(names)})（a tuple of "
            f"{len(names)}），得到 {kind}"
            + (f"，长度 {len(result)}" if isinstance(result, tuple | list) else "")
            + "。"
        )
    return tuple(result)


def _field(name: str, grads: object, field: str) -> object:
    if isinstance(grads, Mapping):
        if field not in grads:
            fail(f"{name} 返回的 grads 缺少 {field}（missing field）。")
        return grads[field]
    if not hasattr(grads, field):
        fail(f"{name} 返回的 grads 应该是参数类型（带字段 {field}），得到 {type(grads).__name__}。")
    return getattr(grads, field)


def _compare_all(
    name: str,
    actual: tuple[Any, ...],
    expected: Gradients,
    names: tuple[str, ...],
    case: Case,
    mistakes: Callable[[], dict[str, Gradients]],
) -> None:
    """Compare every output; the mistakes are complete wrong results, computed once if needed."""
    computed: dict[str, Gradients] = {}

    def known(k: int) -> dict[str, np.ndarray]:
        if not computed:
            computed.update(mistakes())
        return {text: wrong[k] for text, wrong in computed.items()}

    for k, what in enumerate(names):
        compare(f"{name} 返回的 {what}", actual[k], expected[k], case, functools.partial(known, k))


# -- the simple RNN step and every gate: activation(x_t W_x + h_prev W_h + b) ---------------------

_DERIVATIVES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": lambda g: 1.0 - g * g,
    "sigmoid": lambda g: g * (1.0 - g),
    "none": np.ones_like,
    "tanh twice": lambda g: 1.0 - np.tanh(g) ** 2,
}


def _affine(
    da: np.ndarray,
    x_t: np.ndarray,
    h_prev: np.ndarray,
    W_x: np.ndarray,
    W_h: np.ndarray,
    *,
    mean: bool = False,
    transposed: bool = False,
    untransposed: bool = False,
) -> Gradients:
    """``(dx_t, dh_prev, dW_x, dW_h, db)`` of ``a = x_t W_x + h_prev W_h + b``, or a mistake."""
    dW_x, dW_h = x_t.T @ da, h_prev.T @ da
    db = da.sum(axis=0)
    if mean:
        n = da.shape[0]
        dW_x, dW_h, db = dW_x / n, dW_h / n, db / n
    if transposed:
        dW_x, dW_h = dW_x.T, dW_h.T
    dx_t = da @ W_x if untransposed and W_x.shape[0] == W_x.shape[1] else da @ W_x.T
    dh_prev = da @ W_h if untransposed else da @ W_h.T
    return dx_t, dh_prev, dW_x, dW_h, db


def _gate(
    d_gate: np.ndarray,
    x_t: np.ndarray,
    h_prev: np.ndarray,
    g: np.ndarray,
    W_x: np.ndarray,
    W_h: np.ndarray,
    derivative: str,
    **mistake: bool,
) -> Gradients:
    """The VJP of a gate ``g = f(x_t W_x + h_prev W_h + b)`` given its output ``g``."""
    da = d_gate * _DERIVATIVES[derivative](g)
    return _affine(da, x_t, h_prev, W_x, W_h, **mistake)


def _gate_mistakes(
    d_gate: np.ndarray,
    x_t: np.ndarray,
    h_prev: np.ndarray,
    g: np.ndarray,
    W_x: np.ndarray,
    W_h: np.ndarray,
    activation: str,
    derivative_missing: str,
) -> dict[str, Gradients]:
    right = _gate(d_gate, x_t, h_prev, g, W_x, W_h, activation)
    if activation == "tanh":
        found = {
            m.SIGMOID_DERIVATIVE_FOR_TANH: _gate(d_gate, x_t, h_prev, g, W_x, W_h, "sigmoid"),
            m.TANH_APPLIED_TWICE: _gate(d_gate, x_t, h_prev, g, W_x, W_h, "tanh twice"),
        }
    else:
        found = {m.TANH_DERIVATIVE_FOR_SIGMOID: _gate(d_gate, x_t, h_prev, g, W_x, W_h, "tanh")}
    for text, switch in (
        (m.WEIGHT_GRADIENT_TRANSPOSED, "transposed"),
        (m.WEIGHT_NOT_TRANSPOSED, "untransposed"),
        (m.BATCH_MEAN, "mean"),
    ):
        found[text] = _gate(d_gate, x_t, h_prev, g, W_x, W_h, activation, **{switch: True})
    da = d_gate * _DERIVATIVES[activation](g)
    found[m.BIAS_NOT_SUMMED] = (*right[:4], da)
    found[derivative_missing] = _gate(d_gate, x_t, h_prev, g, W_x, W_h, "none")
    return found


def _gate_cases(
    name: str, forward: Callable[..., np.ndarray]
) -> list[tuple[Case, np.ndarray | None]]:
    """``(Case (d_gate, x_t, h_prev, g, W_x, W_h), the gate's bias)``, one per step shape.

    Every case has a bias: the learner gets the gate's output, which the bias went into.
    """
    rng = c.generator(name)
    result = []
    for N, D, H in c.STEP_SHAPES:
        x_t, h_prev = c.step_inputs(rng, N, D, H)
        W_x, W_h, b = c.weights(rng, D, H)
        g = forward(x_t, h_prev, W_x, W_h, b)
        d_gate = rng.normal(0.0, 1.0, (N, H))
        result.append((Case((d_gate, x_t, h_prev, g, W_x, W_h), c.label(N=N, D=D, H=H)), b))
    return result


def _check_gate(
    name: str,
    func: object,
    forward: Callable[..., np.ndarray],
    backward: Callable[..., Gradients],
    activation: str,
    derivative_missing: str,
    names: tuple[str, ...],
) -> None:
    """Check a gate's backward ``func(d_gate, x_t, h_prev, g, W_x, W_h)`` -> 5 gradients."""
    for case, b in _gate_cases(f"bptt.{name}", forward):
        d_gate, x_t, h_prev, _, W_x, W_h = case.args
        expected = tuple(backward(d_gate, x_t, h_prev, W_x, W_h, b))

        def mistakes(args: tuple[Any, ...] = case.args) -> dict[str, Gradients]:
            d_gate, x_t, h_prev, g, W_x, W_h = args
            return _gate_mistakes(d_gate, x_t, h_prev, g, W_x, W_h, activation, derivative_missing)

        actual = _outputs(name, call(name, func, case), names)
        _compare_all(name, actual, expected, names, case, mistakes)


@scored_alone(correct_functions)
def simple_rnn_step_backward(func: object) -> None:
    """Check ``simple_rnn_step_backward(dh_t, x_t, h_prev, h_t, W_xh, W_hh)``."""
    _check_gate(
        "simple_rnn_step_backward",
        func,
        ref.simple_rnn_step,
        ref_rnn_step_backward,
        "tanh",
        m.TANH_DERIVATIVE_MISSING,
        ("dx_t", "dh_prev", "dW_xh", "dW_hh", "db_h"),
    )


@scored_alone(correct_functions)
def forget_gate_backward(func: object) -> None:
    """Check ``forget_gate_backward(dg_f, x_t, h_prev, g_f, W_xf, W_hf)``."""
    _check_gate(
        "forget_gate_backward",
        func,
        ref.forget_gate,
        ref_lstm.forget_gate_backward,
        "sigmoid",
        m.SIGMOID_DERIVATIVE_MISSING,
        ("dx_t", "dh_prev", "dW_xf", "dW_hf", "db_f"),
    )


@scored_alone(correct_functions)
def input_gate_backward(func: object) -> None:
    """Check ``input_gate_backward(dg_i, x_t, h_prev, g_i, W_xi, W_hi)``."""
    _check_gate(
        "input_gate_backward",
        func,
        ref.input_gate,
        ref_lstm.input_gate_backward,
        "sigmoid",
        m.SIGMOID_DERIVATIVE_MISSING,
        ("dx_t", "dh_prev", "dW_xi", "dW_hi", "db_i"),
    )


@scored_alone(correct_functions)
def candidate_cell_state_backward(func: object) -> None:
    """Check ``candidate_cell_state_backward(dc_bar, x_t, h_prev, c_bar, W_xc, W_hc)``."""
    _check_gate(
        "candidate_cell_state_backward",
        func,
        ref.candidate_cell_state,
        ref_lstm.candidate_cell_state_backward,
        "tanh",
        m.CANDIDATE_DERIVATIVE_MISSING,
        ("dx_t", "dh_prev", "dW_xc", "dW_hc", "db_c"),
    )


@scored_alone(correct_functions)
def output_gate_backward(func: object) -> None:
    """Check ``output_gate_backward(dg_o, x_t, h_prev, g_o, W_xo, W_ho)``."""
    _check_gate(
        "output_gate_backward",
        func,
        ref.output_gate,
        ref_lstm.output_gate_backward,
        "sigmoid",
        m.SIGMOID_DERIVATIVE_MISSING,
        ("dx_t", "dh_prev", "dW_xo", "dW_ho", "db_o"),
    )


# -- BPTT over a sequence (simple RNN) ------------------------------------------------------------


def _bptt(
    dh_seq: np.ndarray,
    x: np.ndarray,
    h0: np.ndarray,
    h_seq: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    *,
    carry: bool = True,
    every_output: bool = True,
    accumulate: bool = True,
    backwards: bool = True,
    off_by_one: bool = False,
    derivative: str = "tanh",
    mean: bool = False,
    transposed: bool = False,
) -> Gradients:
    """``(dx, dh0, dW_xh, dW_hh, db_h)`` of the simple RNN over a sequence, or a mistake."""
    N, T, D = x.shape
    H = W_hh.shape[0]
    dx = np.zeros((N, T, D))
    dW_xh, dW_hh, db_h = np.zeros((D, H)), np.zeros((H, H)), np.zeros(H)
    dh_next = np.zeros((N, H)) if every_output else dh_seq[:, -1]
    for t in reversed(range(T)) if backwards else range(T):
        h_prev = h0 if t == 0 else h_seq[:, t - 1]
        if off_by_one:
            h_prev = h_seq[:, t]
        dh = (dh_seq[:, t] if every_output else 0.0) + (dh_next if carry else 0.0)
        da = dh * _DERIVATIVES[derivative](h_seq[:, t])
        dx[:, t], dh_next, dWx, dWh, db = _affine(
            da, x[:, t], h_prev, W_xh, W_hh, mean=mean, transposed=transposed
        )
        if accumulate:
            dW_xh, dW_hh, db_h = dW_xh + dWx, dW_hh + dWh, db_h + db
        else:
            dW_xh, dW_hh, db_h = dWx, dWh, db
    return dx, dh_next, dW_xh, dW_hh, db_h


def reference_bptt(
    dh_seq: np.ndarray,
    x: np.ndarray,
    h0: np.ndarray,
    h_seq: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray | None,
) -> Gradients:
    """``(dx, dh0, dW_xh, dW_hh, db_h)`` from ``rnn_ref``'s BPTT of a layer returning sequences."""
    params = ref.SimpleRNNParams(W_xh=W_xh, W_hh=W_hh, b_h=b_h)
    grads = ref_bptt.simple_rnn_bptt(dh_seq, x, params, return_sequences=True, initial_state=h0)
    (dh0,) = grads.d_initial_state
    p = cast(ref.SimpleRNNParams, grads.params)
    return grads.dx, dh0, p.W_xh, p.W_hh, p.b_h


BPTT_SHAPES = ((2, 3, 3, 3), (1, 4, 2, 5), (3, 5, 4, 2), (2, 1, 3, 2))
"""(N, T, D, H) of the BPTT cases; T = 1 is included, the first has D == H."""


def _bptt_mistakes(
    dh_seq: np.ndarray,
    x: np.ndarray,
    h0: np.ndarray,
    h_seq: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
) -> dict[str, Gradients]:
    args = (dh_seq, x, h0, h_seq, W_xh, W_hh)
    found = {
        m.NEXT_STEP_NOT_CARRIED: _bptt(*args, carry=False),
        m.OUTPUT_GRADIENT_FORGOTTEN: _bptt(*args, every_output=False),
        m.NOT_ACCUMULATED: _bptt(*args, accumulate=False),
        m.FORWARD_IN_TIME: _bptt(*args, backwards=False),
        m.H_PREV_OFF_BY_ONE: _bptt(*args, off_by_one=True),
        m.TANH_DERIVATIVE_MISSING: _bptt(*args, derivative="none"),
        m.TANH_APPLIED_TWICE: _bptt(*args, derivative="tanh twice"),
        m.BATCH_MEAN: _bptt(*args, mean=True),
        m.WEIGHT_GRADIENT_TRANSPOSED: _bptt(*args, transposed=True),
    }
    return found


@scored_alone(correct_functions)
def simple_rnn_bptt(func: object) -> None:
    """Check ``simple_rnn_bptt(dh_seq, x, h0, h_seq, W_xh, W_hh)`` -> 5 gradients."""
    name = "simple_rnn_bptt"
    rng = c.generator(f"bptt.{name}")
    names = ("dx", "dh0", "dW_xh", "dW_hh", "db_h")
    for N, T, D, H in BPTT_SHAPES:
        x = c.sequence_inputs(rng, N, T, D)
        W_xh, W_hh, b_h = c.weights(rng, D, H)
        h0 = c.initial_state(rng, N, H)
        h_seq = ref.simple_rnn(
            x, ref.SimpleRNNParams(W_xh=W_xh, W_hh=W_hh, b_h=b_h), return_sequences=True,
            initial_state=h0,
        )  # fmt: skip
        dh_seq = rng.normal(0.0, 1.0, (N, T, H))
        case = Case((dh_seq, x, h0, h_seq, W_xh, W_hh), c.label(N=N, T=T, D=D, H=H))
        expected = reference_bptt(dh_seq, x, h0, h_seq, W_xh, W_hh, b_h)
        actual = _outputs(name, call(name, func, case), names)
        _compare_all(
            name, actual, expected, names, case, functools.partial(_bptt_mistakes, *case.args)
        )


# -- LSTM: the hidden output, the cell-state update and the step ----------------------------------


def _state_cases(name: str, count: int) -> list[Case]:
    """Cases of an upstream gradient and ``count`` (N, H) arrays, see ``_state_arrays``."""
    rng = c.generator(name)
    result = []
    for N, _, H in c.STEP_SHAPES:
        upstream = rng.normal(0.0, 1.0, (N, H))
        arrays = [rng.normal(0.0, 1.0, (N, H))]
        arrays += [rng.uniform(0.0, 1.0, (N, H)) for _ in range(count - 2)]
        arrays.append(rng.uniform(-1.0, 1.0, (N, H)))
        result.append(Case((upstream, *arrays), c.label(N=N, H=H)))
    return result


@scored_alone(correct_functions)
def hidden_output_backward(func: object) -> None:
    """Check ``hidden_output_backward(dh_t, g_o, c_t)`` -> ``(dg_o, dc_t)``."""
    name = "hidden_output_backward"
    names = ("dg_o", "dc_t")
    for case in _state_cases(f"bptt.{name}", 2):
        dh_t, c_t, g_o = case.args  # a cell state anywhere, a gate in (0, 1)
        g_o = (g_o + 1.0) / 2.0
        case = Case((dh_t, g_o, c_t), case.label)
        expected = tuple(ref_lstm.hidden_output_backward(dh_t, g_o, c_t))
        s = np.tanh(c_t)

        def mistakes(
            dh_t: np.ndarray = dh_t, g_o: np.ndarray = g_o, c_t: np.ndarray = c_t, s: np.ndarray = s
        ) -> dict[str, Gradients]:
            right = dh_t * g_o * (1.0 - s * s)
            return {
                m.TANH_C_DERIVATIVE_MISSING: (dh_t * s, dh_t * g_o),
                m.ONE_MINUS_C_SQUARED: (dh_t * s, dh_t * g_o * (1.0 - c_t * c_t)),
                m.G_O_MISSING_IN_DC: (dh_t * s, dh_t * (1.0 - s * s)),
                m.DG_O_WITHOUT_TANH: (dh_t * c_t, right),
            }

        actual = _outputs(name, call(name, func, case), names)
        _compare_all(name, actual, expected, names, case, mistakes)


@scored_alone(correct_functions)
def cell_state_update_backward(func: object) -> None:
    """Check ``cell_state_update_backward(dc_t, c_prev, g_f, g_i, c_bar)`` -> 4 gradients."""
    name = "cell_state_update_backward"
    names = ("dc_prev", "dg_f", "dg_i", "dc_bar")
    for case in _state_cases(f"bptt.{name}", 4):
        dc_t, c_prev, g_f, g_i, c_bar = case.args
        expected = tuple(ref_lstm.cell_state_update_backward(dc_t, c_prev, g_f, g_i, c_bar))

        def mistakes(
            dc_t: np.ndarray = dc_t,
            c_prev: np.ndarray = c_prev,
            g_f: np.ndarray = g_f,
            g_i: np.ndarray = g_i,
            c_bar: np.ndarray = c_bar,
        ) -> dict[str, Gradients]:
            return {
                m.C_PREV_AND_C_BAR_SWAPPED: (dc_t * g_f, dc_t * c_bar, dc_t * c_prev, dc_t * g_i),
                m.FORGET_AND_INPUT_SWAPPED: (dc_t * g_i, dc_t * c_prev, dc_t * c_bar, dc_t * g_f),
                m.FORGET_GATE_MISSING_IN_DC_PREV: (dc_t, dc_t * c_prev, dc_t * c_bar, dc_t * g_i),
            }

        actual = _outputs(name, call(name, func, case), names)
        _compare_all(name, actual, expected, names, case, mistakes)


def _lstm_step(
    dh_t: np.ndarray,
    dc_t: np.ndarray,
    x_t: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    p: NotebookParams,
    *,
    h_path: bool = True,
    carry_c: bool = True,
    c_derivative: str = "tanh",
    forget_in_dc_prev: bool = True,
    mean: bool = False,
    transposed: bool = False,
) -> Gradients:
    """``(dx_t, dh_prev, dc_prev, {field: gradient})`` of one LSTM step, or a mistake."""
    g_f = ref.forget_gate(x_t, h_prev, p.W_xf, p.W_hf, p.b_f)
    g_i = ref.input_gate(x_t, h_prev, p.W_xi, p.W_hi, p.b_i)
    c_bar = ref.candidate_cell_state(x_t, h_prev, p.W_xc, p.W_hc, p.b_c)
    c_t = g_f * c_prev + g_i * c_bar
    g_o = ref.output_gate(x_t, h_prev, p.W_xo, p.W_ho, p.b_o)
    s = np.tanh(c_t)
    through_h = dh_t * g_o * {"tanh": 1.0 - s * s, "none": 1.0, "c": 1.0 - c_t * c_t}[c_derivative]
    dc = (dc_t if carry_c else 0.0) + (through_h if h_path else 0.0)
    upstream = {"f": dc * c_prev, "i": dc * c_bar, "c": dc * g_i, "o": dh_t * s}
    gates = {"f": g_f, "i": g_i, "c": c_bar, "o": g_o}
    dx_t: np.ndarray | float = 0.0
    dh_prev: np.ndarray | float = 0.0
    grads: dict[str, np.ndarray] = {}
    for k in "ifco":
        W_x, W_h = getattr(p, f"W_x{k}"), getattr(p, f"W_h{k}")
        derivative = "tanh" if k == "c" else "sigmoid"
        g = _gate(upstream[k], x_t, h_prev, gates[k], W_x, W_h, derivative, mean=mean,
                  transposed=transposed)  # fmt: skip
        dx_t, dh_prev = dx_t + g[0], dh_prev + g[1]
        grads.update({f"W_x{k}": g[2], f"W_h{k}": g[3], f"b_{k}": g[4]})
    return dx_t, dh_prev, dc * g_f if forget_in_dc_prev else dc, grads


LSTM_FIELDS = LSTMParams._fields
GRU_FIELDS = GRUParams._fields


def _flat(gradients: Gradients, fields: tuple[str, ...]) -> Gradients:
    """``(dx_t, ..., grads)`` as a flat tuple: the state gradients, then grads' fields."""
    *states, grads = gradients
    return (*states, *(grads[f] for f in fields))


def _step_cases(
    name: str,
    random_params: Callable[[np.random.Generator, int, int], NotebookParams],
    extra_state: bool,
) -> list[Case]:
    rng = c.generator(name)
    result = []
    for N, D, H in c.STEP_SHAPES:
        x_t, h_prev = c.step_inputs(rng, N, D, H)
        params = random_params(rng, D, H)
        dh_t = rng.normal(0.0, 1.0, (N, H))
        args: tuple[Any, ...]
        if extra_state:
            c_prev, dc_t = rng.normal(0.0, 1.0, (N, H)), rng.normal(0.0, 1.0, (N, H))
            args = (dh_t, dc_t, x_t, h_prev, c_prev, params)
        else:
            args = (dh_t, x_t, h_prev, params)
        result.append(Case(args, c.label(N=N, D=D, H=H)))
    return result


def _lstm_params(rng: np.random.Generator, D: int, H: int) -> NotebookParams:
    return LSTMParams(**_gate_weights(rng, D, H, LSTM_LAYOUT.gates))


def _gate_weights(
    rng: np.random.Generator, D: int, H: int, gates: tuple[str, ...]
) -> dict[str, np.ndarray | None]:
    """``W_x?, W_h?, b_?`` of each gate, drawn gate after gate in the order ``gates``."""
    fields: dict[str, np.ndarray | None] = {}
    for g in gates:
        fields[f"W_x{g}"], fields[f"W_h{g}"], fields[f"b_{g}"] = c.weights(rng, D, H)
    return fields


def _step_result(
    name: str, func: object, case: Case, states: tuple[str, ...], fields: tuple[str, ...]
) -> tuple[Any, ...]:
    """The learner's ``(*state gradients, grads)`` as a flat tuple, fields named."""
    result = _outputs(name, call(name, func, case), (*states, "grads"))
    return (*result[:-1], *(_field(name, result[-1], f) for f in fields))


@scored_alone(correct_functions)
def lstm_step_backward(func: object) -> None:
    """Check ``lstm_step_backward(dh_t, dc_t, x_t, h_prev, c_prev, params)``.

    Returns ``(dx_t, dh_prev, dc_prev, grads)``.
    """
    name = "lstm_step_backward"
    states = ("dx_t", "dh_prev", "dc_prev")
    names = (*states, *(f"grads.{f}" for f in LSTM_FIELDS))
    for case in _step_cases(f"bptt.{name}", _lstm_params, extra_state=True):
        dh_t, dc_t, x_t, h_prev, c_prev, p = case.args
        reference = ref_lstm.lstm_step_backward(
            dh_t, dc_t, x_t, h_prev, c_prev, ref.LSTMParams(**p._asdict())
        )
        grads = {f: getattr(reference.params, f) for f in LSTM_FIELDS}
        expected = _flat((*reference[:3], grads), LSTM_FIELDS)

        def mistakes(args: tuple[Any, ...] = case.args) -> dict[str, Gradients]:
            variants: dict[str, dict[str, Any]] = {
                m.H_PATH_INTO_C_MISSING: {"h_path": False},
                m.NEXT_C_NOT_CARRIED: {"carry_c": False},
                m.TANH_C_DERIVATIVE_MISSING: {"c_derivative": "none"},
                m.ONE_MINUS_C_SQUARED: {"c_derivative": "c"},
                m.FORGET_GATE_MISSING_IN_DC_PREV: {"forget_in_dc_prev": False},
                m.BATCH_MEAN: {"mean": True},
                m.WEIGHT_GRADIENT_TRANSPOSED: {"transposed": True},
            }
            return {
                text: _flat(_lstm_step(*args, **switch), LSTM_FIELDS)
                for text, switch in variants.items()
            }

        actual = _step_result(name, func, case, states, LSTM_FIELDS)
        _compare_all(name, actual, expected, names, case, mistakes)


# -- GRU (the notes' form: reset before the product, h_t = (1 − g_z) h_{t−1} + g_z h̄_t) ----------


def _gru_params(rng: np.random.Generator, D: int, H: int) -> NotebookParams:
    return GRUParams(**_gate_weights(rng, D, H, GRU_LAYOUT.gates))


def _gru_step(
    dh_t: np.ndarray,
    x_t: np.ndarray,
    h_prev: np.ndarray,
    p: NotebookParams,
    *,
    direct: bool = True,
    convention: str = "notes",
    candidate_path: bool = True,
    reset_in_path: bool = True,
    h_derivative: str = "tanh",
    q_in_dW_hh: bool = True,
    mean: bool = False,
    transposed: bool = False,
) -> Gradients:
    """``(dx_t, dh_prev, {field: gradient})`` of one GRU step (notes' form), or a mistake."""
    g_r = ref.reset_gate(x_t, h_prev, p.W_xr, p.W_hr, p.b_r)
    q = g_r * h_prev
    h_bar = ref.candidate_state(x_t, h_prev, g_r, p.W_xh, p.W_hh, p.b_h)
    g_z = ref.update_gate(x_t, h_prev, p.W_xz, p.W_hz, p.b_z)
    dh_prev: np.ndarray | float
    if convention == "notes":
        dh_prev, dh_bar, dg_z = dh_t * (1.0 - g_z), dh_t * g_z, dh_t * (h_bar - h_prev)
    else:
        dh_prev, dh_bar, dg_z = dh_t * g_z, dh_t * (1.0 - g_z), dh_t * (h_prev - h_bar)
    if not direct:
        dh_prev = 0.0
    switches = {"mean": mean, "transposed": transposed}
    cand = _gate(dh_bar, x_t, q, h_bar, p.W_xh, p.W_hh, h_derivative, **switches)
    if not q_in_dW_hh:
        cand = (*cand[:3], _gate(dh_bar, x_t, h_prev, h_bar, p.W_xh, p.W_hh, h_derivative,
                                 **switches)[3], cand[4])  # fmt: skip
    dq = cand[1]
    dg_r = dq * h_prev
    if candidate_path:
        dh_prev = dh_prev + (dq * g_r if reset_in_path else dq)
    reset = _gate(dg_r, x_t, h_prev, g_r, p.W_xr, p.W_hr, "sigmoid", **switches)
    update = _gate(dg_z, x_t, h_prev, g_z, p.W_xz, p.W_hz, "sigmoid", **switches)
    grads: dict[str, np.ndarray] = {}
    for k, g in (("z", update), ("r", reset), ("h", cand)):
        grads.update({f"W_x{k}": g[2], f"W_h{k}": g[3], f"b_{k}": g[4]})
    dx_t = update[0] + reset[0] + cand[0]
    return dx_t, dh_prev + update[1] + reset[1], grads


@scored_alone(correct_functions)
def gru_step_backward(func: object) -> None:
    """Check ``gru_step_backward(dh_t, x_t, h_prev, params)`` -> ``(dx_t, dh_prev, grads)``."""
    name = "gru_step_backward"
    states = ("dx_t", "dh_prev")
    names = (*states, *(f"grads.{f}" for f in GRU_FIELDS))
    for case in _step_cases(f"bptt.{name}", _gru_params, extra_state=False):
        dh_t, x_t, h_prev, p = case.args
        params = ref.GRUParams(**p._asdict(), reset_after=False, update_convention="notes")
        reference = ref_gru_step_backward(dh_t, x_t, h_prev, params)
        grads = {f: getattr(reference.params, f) for f in GRU_FIELDS}
        expected = _flat((*reference[:2], grads), GRU_FIELDS)

        def mistakes(args: tuple[Any, ...] = case.args) -> dict[str, Gradients]:
            variants: dict[str, dict[str, Any]] = {
                m.DIRECT_PATH_MISSING: {"direct": False},
                m.UPDATE_CONVENTION_SWAPPED: {"convention": "keras"},
                m.CANDIDATE_PATH_MISSING: {"candidate_path": False},
                m.RESET_MISSING_IN_DH_PREV: {"reset_in_path": False},
                m.CANDIDATE_STATE_DERIVATIVE_MISSING: {"h_derivative": "none"},
                m.DW_HH_USES_H_PREV: {"q_in_dW_hh": False},
                m.BATCH_MEAN: {"mean": True},
                m.WEIGHT_GRADIENT_TRANSPOSED: {"transposed": True},
            }
            return {
                text: _flat(_gru_step(*args, **switch), GRU_FIELDS)
                for text, switch in variants.items()
            }

        actual = _step_result(name, func, case, states, GRU_FIELDS)
        _compare_all(name, actual, expected, names, case, mistakes)
