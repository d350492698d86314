"""Hidden tests of the ``lstm`` assignment: each gate, the step, a sequence, a Keras LSTM."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

import rnn_ref as ref

from . import cases as c
from .core import (
    Case,
    call,
    check_cases,
    compare,
    compare_with_keras,
    expect_pair,
    fail,
)
from .keras_reference import load
from .rnn import gate_mistakes
from .substitution import use_correct_earlier_functions

KERAS_GATE_ORDER = ("i", "f", "c", "o")

ORDER = (
    "forget_gate",
    "input_gate",
    "candidate_cell_state",
    "cell_state_update",
    "output_gate",
    "hidden_output",
    "lstm_step",
    "lstm_sequence",
    "split_keras_lstm_weights",
    "keras_lstm_forward",
)
"""The graded functions in the order the notebook defines them."""


class LSTMParams(NamedTuple):
    """The notebook's parameter container: same fields, same order as ``ref.LSTMParams``."""

    W_xi: np.ndarray
    W_hi: np.ndarray
    b_i: np.ndarray | None
    W_xf: np.ndarray
    W_hf: np.ndarray
    b_f: np.ndarray | None
    W_xc: np.ndarray
    W_hc: np.ndarray
    b_c: np.ndarray | None
    W_xo: np.ndarray
    W_ho: np.ndarray
    b_o: np.ndarray | None


FIELDS = LSTMParams._fields


def _gate(name: str, func, reference, activation: str) -> None:
    check_cases(
        name,
        func,
        c.gate_cases(f"lstm.{name}"),
        reference,
        gate_mistakes(reference, activation),
    )


def forget_gate(func) -> None:
    """Check ``forget_gate(x_t, h_prev, W_xf, W_hf, b_f=None)``."""
    _gate("forget_gate", func, ref.forget_gate, "sigmoid")


def input_gate(func) -> None:
    """Check ``input_gate(x_t, h_prev, W_xi, W_hi, b_i=None)``."""
    _gate("input_gate", func, ref.input_gate, "sigmoid")


def output_gate(func) -> None:
    """Check ``output_gate(x_t, h_prev, W_xo, W_ho, b_o=None)``."""
    _gate("output_gate", func, ref.output_gate, "sigmoid")


def candidate_cell_state(func) -> None:
    """Check ``candidate_cell_state(x_t, h_prev, W_xc, W_hc, b_c=None)``."""
    _gate("candidate_cell_state", func, ref.candidate_cell_state, "tanh")


def _state_cases(name: str, count: int) -> list[Case]:
    """Cases of ``count`` (N, H) arrays: a state in R, then gates in (0, 1), then a tanh value."""
    rng = c.generator(name)
    result = []
    for N, _, H in c.STEP_SHAPES:
        arrays = [rng.normal(0.0, 1.0, (N, H))]
        arrays += [rng.uniform(0.0, 1.0, (N, H)) for _ in range(count - 2)]
        arrays.append(rng.uniform(-1.0, 1.0, (N, H)))
        result.append(Case(tuple(arrays), c.label(N=N, H=H)))
    return result


def cell_state_update(func) -> None:
    """Check ``cell_state_update(c_prev, g_f, g_i, c_bar)``."""

    def mistakes(c_prev, g_f, g_i, c_bar):
        return {
            "把 g_f 和 g_i 用反了（forget and input gates swapped）": g_i * c_prev + g_f * c_bar,
            "没有用遗忘门（forget gate not applied to c_prev）": c_prev + g_i * c_bar,
            "没有用输入门（input gate not applied to c_bar）": g_f * c_prev + c_bar,
            "多加了 tanh（c_t has no tanh）": np.tanh(g_f * c_prev + g_i * c_bar),
        }

    name = "cell_state_update"
    check_cases(name, func, _state_cases(f"lstm.{name}", 4), ref.cell_state_update, mistakes)


def hidden_output(func) -> None:
    """Check ``hidden_output(g_o, c_t)``."""

    def mistakes(g_o, c_t):
        return {
            "漏了 tanh（tanh missing: h_t = g_o ⊙ tanh(c_t)）": g_o * c_t,
            "用了 sigmoid 而不是 tanh（tanh and sigmoid swapped）": g_o * ref.sigmoid(c_t),
        }

    def cases():
        # (g_o, c_t): the gate in (0, 1), the cell state anywhere.
        return [Case(case.args[::-1], case.label) for case in _state_cases("lstm.hidden_output", 2)]

    check_cases("hidden_output", func, cases(), ref.hidden_output, mistakes)


def as_reference_params(params) -> ref.LSTMParams:
    return ref.LSTMParams(**{name: getattr(params, name) for name in FIELDS})


def random_params(rng: np.random.Generator, D: int, H: int, bias: bool = True) -> LSTMParams:
    values = []
    for _ in KERAS_GATE_ORDER:
        values.extend(c.weights(rng, D, H, bias=bias))
    return LSTMParams(*values)


def _correct_functions() -> dict:
    """Correct versions of the notebook's functions, installed when a later one is checked."""
    return {
        "forget_gate": ref.forget_gate,
        "input_gate": ref.input_gate,
        "candidate_cell_state": ref.candidate_cell_state,
        "cell_state_update": ref.cell_state_update,
        "output_gate": ref.output_gate,
        "hidden_output": ref.hidden_output,
        "lstm_step": lambda x_t, h_prev, c_prev, params: tuple(
            ref.lstm_step(x_t, h_prev, c_prev, as_reference_params(params))
        ),
        "lstm_sequence": _reference_sequence,
        "split_keras_lstm_weights": lambda kernel, recurrent_kernel, bias: LSTMParams(
            **_keras_blocks(kernel, recurrent_kernel, bias, KERAS_GATE_ORDER)
        ),
    }


def lstm_step(func, namespace: dict | None = None) -> None:
    """Check ``lstm_step(x_t, h_prev, c_prev, params) -> (h_t, c_t)``, with correct gates."""
    name = "lstm_step"
    rng = c.generator(f"lstm.{name}")
    use_correct_earlier_functions(namespace, _correct_functions(), ORDER, name)
    for i, (N, D, H) in enumerate(c.STEP_SHAPES):
        x_t, h_prev = c.step_inputs(rng, N, D, H)
        c_prev = rng.normal(0.0, 1.0, (N, H))
        params = random_params(rng, D, H, bias=i != 3)
        case = Case((x_t, h_prev, c_prev, params), c.label(N=N, D=D, H=H))
        h_t, c_t = ref.lstm_step(x_t, h_prev, c_prev, as_reference_params(params))
        result = expect_pair(name, call(name, func, case), ("h_t", "c_t"))
        g_o = ref.output_gate(x_t, h_prev, params.W_xo, params.W_ho, params.b_o)
        swapped = "把返回值的顺序写反了（returned (c_t, h_t) instead of (h_t, c_t)）"
        compare(
            f"{name} 返回的 h_t",
            result[0],
            h_t,
            case,
            {
                swapped: c_t,
                "用 c_{t-1} 而不是 c_t 计算 h_t（h_t uses c_prev）": g_o * np.tanh(c_prev),
            },
        )
        compare(f"{name} 返回的 c_t", result[1], c_t, case, {swapped: h_t})


def _reference_sequence(x, params, h0=None, c0=None):
    initial = (
        None if h0 is None and c0 is None else [_zeros_or(h0, x, params), _zeros_or(c0, x, params)]
    )
    return ref.lstm(x, as_reference_params(params), return_sequences=True, initial_state=initial)


def _zeros_or(state, x, params):
    return np.zeros((x.shape[0], params.W_hi.shape[0])) if state is None else state


def lstm_sequence(func, namespace: dict | None = None) -> None:
    """Check ``lstm_sequence(x, params, h0=None, c0=None) -> (N, T, H)``, with a correct step."""
    name = "lstm_sequence"
    rng = c.generator(f"lstm.{name}")
    cases = []
    for i, (N, T, D, H) in enumerate(c.SEQUENCE_SHAPES):
        x = c.sequence_inputs(rng, N, T, D)
        params = random_params(rng, D, H)
        dims = c.label(N=N, T=T, D=D, H=H)
        if i == 1:
            h0, c0 = c.initial_state(rng, N, H), rng.normal(0.0, 1.0, (N, H))
            cases.append(Case((x, params, h0, c0), dims + ", h0 and c0 given"))
        else:
            cases.append(Case((x, params), dims))

    def mistakes(x, params, h0=None, c0=None):
        p = as_reference_params(params)
        found = {
            "只返回了最后一步（returned only the last step instead of every step）": (
                _reference_sequence(x, params, h0, c0)[:, -1]
            ),
            "按时间倒序处理了序列（ran the sequence backwards）": ref.lstm(
                x,
                p,
                return_sequences=True,
                go_backwards=True,
                initial_state=None if h0 is None else [h0, c0],
            ),
        }
        if h0 is not None:
            found["忽略了初始状态 h0、c0（initial states ignored）"] = _reference_sequence(
                x, params
            )
        return found

    use_correct_earlier_functions(namespace, _correct_functions(), ORDER, name)
    check_cases(name, func, cases, _reference_sequence, mistakes)


def _keras_blocks(kernel, recurrent_kernel, bias, order) -> dict[str, np.ndarray]:
    """Per-gate blocks of Keras LSTM weights read in the gate ``order`` (Keras's is i, f, c, o)."""
    H = recurrent_kernel.shape[0]
    blocks = {}
    for k, gate in enumerate(order):
        columns = slice(k * H, (k + 1) * H)
        blocks[f"W_x{gate}"] = kernel[:, columns]
        blocks[f"W_h{gate}"] = recurrent_kernel[:, columns]
        blocks[f"b_{gate}"] = bias[columns]
    return blocks


def _field(result, name: str):
    if isinstance(result, Mapping):
        if name not in result:
            fail(f"split_keras_lstm_weights 的结果缺少 {name}（missing field）。")
        return result[name]
    if not hasattr(result, name):
        fail(
            f"split_keras_lstm_weights 应该返回 LSTMParams（带字段 {name}），"
            f"得到 {type(result).__name__}。"
        )
    return getattr(result, name)


def _keras_cases(name: str) -> list[Case]:
    rng = c.generator(name)
    result = []
    for N, T, D, H in ((2, 4, 3, 5), (1, 3, 4, 2)):
        kernel = rng.normal(0.0, 0.5, (D, 4 * H))
        recurrent_kernel = rng.normal(0.0, 0.5, (H, 4 * H))
        bias = rng.normal(0.0, 0.5, 4 * H)
        x = c.sequence_inputs(rng, N, T, D)
        result.append(Case((x, kernel, recurrent_kernel, bias), c.label(N=N, T=T, D=D, H=H)))
    return result


def split_keras_lstm_weights(func) -> None:
    """Check ``split_keras_lstm_weights(kernel, recurrent_kernel, bias) -> LSTMParams``."""
    name = "split_keras_lstm_weights"
    for case in _keras_cases(f"lstm.{name}"):
        kernel, recurrent_kernel, bias = case.args[1:]
        weights = Case(case.args[1:], c.label(D=kernel.shape[0], H=recurrent_kernel.shape[0]))
        expected = ref.lstm_params_from_keras([kernel, recurrent_kernel, bias])
        result = call(name, func, weights)
        H = recurrent_kernel.shape[0]
        for field in FIELDS:
            source = {"W_x": kernel, "W_h": recurrent_kernel, "b_": bias}[field[:-1]]
            blocks = {
                f"Keras 的第 {k + 1} 块（{gate}）": source[..., k * H : (k + 1) * H]
                for k, gate in enumerate(KERAS_GATE_ORDER)
            }
            wrong_order = {
                f"把 {field} 取成了 {block}；Keras 的门顺序是 i, f, c, o（gate order wrong）": value
                for block, value in blocks.items()
            }
            compare(
                f"{name} 的 {field}",
                _field(result, field),
                getattr(expected, field),
                weights,
                wrong_order,
            )


def _permuted_forward(x, kernel, recurrent_kernel, bias, order):
    params = ref.LSTMParams(**_keras_blocks(kernel, recurrent_kernel, bias, order))
    return ref.lstm(x, params, return_sequences=True)


def _keras_forward_mistakes(x, kernel, recurrent_kernel, bias):
    found = {}
    for order in itertools.permutations(KERAS_GATE_ORDER):
        if order != KERAS_GATE_ORDER:
            text = (
                f"按 {', '.join(order)} 的顺序切分了权重；Keras 是 i, f, c, o（gate order wrong）"
            )
            found[text] = _permuted_forward(x, kernel, recurrent_kernel, bias, order)
    found["只返回了最后一步（returned only the last step）"] = _permuted_forward(
        x, kernel, recurrent_kernel, bias, KERAS_GATE_ORDER
    )[:, -1]
    return found


def keras_lstm_forward(func, namespace: dict | None = None) -> None:
    """Check ``keras_lstm_forward(x, kernel, recurrent_kernel, bias) -> (N, T, H)``.

    First against the outputs a real ``keras.layers.LSTM`` computed (the assignment's reference
    file), then on fresh random weights against ``rnn_ref``, so returning the stored outputs
    does not pass.
    """
    name = "keras_lstm_forward"
    stored = load("lstm")
    args = (stored["x"], stored["kernel"], stored["recurrent_kernel"], stored["bias"])
    case = Case(args, "keras_lstm_reference.npz 中的 Keras LSTM")
    use_correct_earlier_functions(namespace, _correct_functions(), ORDER, name)
    compare_with_keras(name, func, case, stored["output"], _keras_forward_mistakes)
    check_cases(
        name,
        func,
        _keras_cases(f"lstm.{name}"),
        lambda *a: _permuted_forward(*a, KERAS_GATE_ORDER),
        _keras_forward_mistakes,
    )
