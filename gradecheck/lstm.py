"""Hidden tests of the ``lstm`` assignment: each gate, the step, a sequence, a Keras LSTM."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

import rnn_ref as ref
from rnn_ref.keras_weights import LSTM_LAYOUT, split_keras_weights

from . import cases as c
from . import gated
from . import mistakes as m
from .core import Case, call, check_cases, compare, expect_pair, fail
from .substitution import scored_alone

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

CELL = gated.GatedCell(
    assignment="lstm",
    layout=LSTM_LAYOUT,
    reference=ref.LSTMParams,
    reference_options={},
    layer=ref.lstm,
    states=("h0", "c0"),
    keras_name="LSTM",
    keras_layout=LSTM_LAYOUT,
    params_from_keras=ref.lstm_params_from_keras,
)
LSTMParams = CELL.Params


def correct_functions() -> dict[str, Callable[..., Any]]:
    """A correct version of every graded function, with the notebook's parameters."""
    return {
        "forget_gate": ref.forget_gate,
        "input_gate": ref.input_gate,
        "candidate_cell_state": ref.candidate_cell_state,
        "cell_state_update": ref.cell_state_update,
        "output_gate": ref.output_gate,
        "hidden_output": ref.hidden_output,
        "lstm_step": lambda x_t, h_prev, c_prev, params: tuple(
            ref.lstm_step(x_t, h_prev, c_prev, CELL.reference_params(params))
        ),
        "lstm_sequence": lambda x, params, h0=None, c0=None: CELL.reference_sequence(
            x, params, h0, c0
        ),
        "split_keras_lstm_weights": lambda kernel, recurrent_kernel, bias: LSTMParams(
            **split_keras_weights([kernel, recurrent_kernel, bias], LSTM_LAYOUT)
        ),
        "keras_lstm_forward": CELL.keras_forward,
    }


@scored_alone(correct_functions)
def forget_gate(func: object) -> None:
    """Check ``forget_gate(x_t, h_prev, W_xf, W_hf, b_f=None)``."""
    gated.check_gate(CELL, "forget_gate", func, ref.forget_gate, "sigmoid")


@scored_alone(correct_functions)
def input_gate(func: object) -> None:
    """Check ``input_gate(x_t, h_prev, W_xi, W_hi, b_i=None)``."""
    gated.check_gate(CELL, "input_gate", func, ref.input_gate, "sigmoid")


@scored_alone(correct_functions)
def output_gate(func: object) -> None:
    """Check ``output_gate(x_t, h_prev, W_xo, W_ho, b_o=None)``."""
    gated.check_gate(CELL, "output_gate", func, ref.output_gate, "sigmoid")


@scored_alone(correct_functions)
def candidate_cell_state(func: object) -> None:
    """Check ``candidate_cell_state(x_t, h_prev, W_xc, W_hc, b_c=None)``."""
    gated.check_gate(CELL, "candidate_cell_state", func, ref.candidate_cell_state, "tanh")


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


@scored_alone(correct_functions)
def cell_state_update(func: object) -> None:
    """Check ``cell_state_update(c_prev, g_f, g_i, c_bar)``."""

    def mistakes(
        c_prev: np.ndarray, g_f: np.ndarray, g_i: np.ndarray, c_bar: np.ndarray
    ) -> dict[str, np.ndarray]:
        return {
            m.FORGET_AND_INPUT_SWAPPED: g_i * c_prev + g_f * c_bar,
            m.FORGET_GATE_NOT_APPLIED: c_prev + g_i * c_bar,
            m.INPUT_GATE_NOT_APPLIED: g_f * c_prev + c_bar,
            m.CELL_STATE_TANH: np.tanh(g_f * c_prev + g_i * c_bar),
        }

    name = "cell_state_update"
    check_cases(name, func, _state_cases(f"lstm.{name}", 4), ref.cell_state_update, mistakes)


@scored_alone(correct_functions)
def hidden_output(func: object) -> None:
    """Check ``hidden_output(g_o, c_t)``."""

    def mistakes(g_o: np.ndarray, c_t: np.ndarray) -> dict[str, np.ndarray]:
        return {
            m.HIDDEN_OUTPUT_TANH_MISSING: g_o * c_t,
            m.activation_swapped("sigmoid", "tanh"): g_o * ref.sigmoid(c_t),
        }

    def cases() -> list[Case]:
        # (g_o, c_t): the gate in (0, 1), the cell state anywhere.
        return [Case(case.args[::-1], case.label) for case in _state_cases("lstm.hidden_output", 2)]

    check_cases("hidden_output", func, cases(), ref.hidden_output, mistakes)


@scored_alone(correct_functions)
def lstm_step(func: object) -> None:
    """Check ``lstm_step(x_t, h_prev, c_prev, params) -> (h_t, c_t)``."""
    name = "lstm_step"
    for case in CELL.step_cases(name):
        x_t, h_prev, c_prev, params = case.args
        h_t, c_t = ref.lstm_step(x_t, h_prev, c_prev, CELL.reference_params(params))
        result = expect_pair(name, call(name, func, case), ("h_t", "c_t"))
        g_o = ref.output_gate(x_t, h_prev, params.W_xo, params.W_ho, params.b_o)
        h_mistakes = {
            m.STEP_RESULTS_SWAPPED: c_t,
            m.HIDDEN_OUTPUT_FROM_C_PREV: g_o * np.tanh(c_prev),
        }
        compare(f"{name} 返回的 h_t", result[0], h_t, case, h_mistakes)
        compare(f"{name} 返回的 c_t", result[1], c_t, case, {m.STEP_RESULTS_SWAPPED: h_t})


@scored_alone(correct_functions)
def lstm_sequence(func: object) -> None:
    """Check ``lstm_sequence(x, params, h0=None, c0=None) -> (N, T, H)``."""
    name = "lstm_sequence"
    gated.check_sequence(CELL, name, func)


def _field(result: object, name: str) -> object:
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


@scored_alone(correct_functions)
def split_keras_lstm_weights(func: object) -> None:
    """Check ``split_keras_lstm_weights(kernel, recurrent_kernel, bias) -> LSTMParams``."""
    name = "split_keras_lstm_weights"
    gates = LSTM_LAYOUT.gates
    for case in c.keras_cases(f"lstm.{name}", LSTM_LAYOUT):
        kernel, recurrent_kernel, bias = case.args[1:]
        weights = Case(case.args[1:], c.label(D=kernel.shape[0], H=recurrent_kernel.shape[0]))
        blocks = split_keras_weights([kernel, recurrent_kernel, bias], LSTM_LAYOUT)
        result = call(name, func, weights)
        for field in LSTMParams._fields:
            kind = field[:-1]  # W_x, W_h or b_
            wrong_order = {
                m.block_taken(field, k, gates): blocks[kind + gate] for k, gate in enumerate(gates)
            }
            compare(
                f"{name} 的 {field}", _field(result, field), blocks[field], weights, wrong_order
            )


def _keras_forward_mistakes(
    x: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray
) -> dict[str, np.ndarray]:
    found = CELL.gate_order_mistakes(x, kernel, recurrent_kernel, bias)
    found[m.LAST_STEP_ONLY] = CELL.keras_forward(x, kernel, recurrent_kernel, bias)[:, -1]
    return found


@scored_alone(correct_functions)
def keras_lstm_forward(func: object) -> None:
    """Check ``keras_lstm_forward(x, kernel, recurrent_kernel, bias) -> (N, T, H)``.

    First against the outputs a real ``keras.layers.LSTM`` computed (the assignment's reference
    file), then on fresh random weights against ``rnn_ref``, so returning the stored outputs
    does not pass.
    """
    name = "keras_lstm_forward"
    gated.check_keras_forward(CELL, name, func, _keras_forward_mistakes)
