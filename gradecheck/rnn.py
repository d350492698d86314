"""Hidden tests of the ``rnn`` assignment: the simple RNN step and a run over a sequence."""

from __future__ import annotations

import numpy as np

import rnn_ref as ref

from . import cases as c
from .core import Case, check_cases
from .substitution import use_correct_earlier_functions

ORDER = ("simple_rnn_step", "simple_rnn_sequence")
"""The graded functions in the order the notebook defines them."""


def gate_mistakes(gate, expected_activation: str):
    """Known wrong versions of ``activation(x_t W_x + h_prev W_h + b)`` computed with ``gate``."""
    other = "tanh" if expected_activation == "sigmoid" else "sigmoid"

    def mistakes(x_t, h_prev, W_x, W_h, b=None):
        found = {
            f"用了 {other} 而不是 {expected_activation}（tanh and sigmoid swapped）": gate(
                x_t, h_prev, W_x, W_h, b, activation=other
            ),
            "没有用激活函数（activation missing）": gate(
                x_t, h_prev, W_x, W_h, b, activation="linear"
            ),
        }
        if b is not None:
            found["漏了偏置（bias missing）"] = gate(x_t, h_prev, W_x, W_h, None)
        if W_x.shape == W_h.shape:
            found["把 x 和 h 的权重用反了（h and x weights swapped）"] = gate(
                x_t, h_prev, W_h, W_x, b
            )
        return found

    return mistakes


def simple_rnn_step(func, *, bias: bool) -> None:
    """Check ``simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None)`` without or with a bias.

    Each grade cell checks what it names: with ``bias=True`` every case passes a bias (a step
    that fails without one loses the other cell's points only).
    """
    name = "simple_rnn_step"
    check_cases(
        name,
        func,
        c.gate_cases(f"rnn.{name}.{bias}", bias=bias, without_bias_case=False),
        ref.simple_rnn_step,
        gate_mistakes(ref.simple_rnn_step, "tanh"),
    )


def reference_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    params = ref.SimpleRNNParams(W_xh=W_xh, W_hh=W_hh, b_h=b_h)
    return ref.simple_rnn(x, params, return_sequences=True, initial_state=h0)


def sequence_cases(name: str) -> list[Case]:
    """Cases ``(x, W_xh, W_hh, b_h[, h0])``: with and without bias, with and without ``h0``."""
    rng = c.generator(name)
    cases = []
    for i, (N, T, D, H) in enumerate(c.SEQUENCE_SHAPES):
        x = c.sequence_inputs(rng, N, T, D)
        W_xh, W_hh, b_h = c.weights(rng, D, H, bias=i != 2)
        dims = c.label(N=N, T=T, D=D, H=H)
        if i == 1:
            cases.append(
                Case((x, W_xh, W_hh, b_h, c.initial_state(rng, N, H)), dims + ", h0 given")
            )
        else:
            cases.append(
                Case((x, W_xh, W_hh, b_h), dims + ("" if b_h is not None else ", b_h=None"))
            )
    return cases


def sequence_mistakes(x, W_xh, W_hh, b_h=None, h0=None):
    """A loop that forgets to carry the state, runs backwards, or returns only the last step."""
    sequence = reference_sequence(x, W_xh, W_hh, b_h, h0)
    start = np.zeros((x.shape[0], W_hh.shape[0])) if h0 is None else h0
    found = {
        "只返回了最后一步（returned only the last step instead of every step）": sequence[:, -1],
        "没有把 h_t 传给下一步（the state is not carried to the next step）": np.stack(
            [ref.simple_rnn_step(x[:, t], start, W_xh, W_hh, b_h) for t in range(x.shape[1])],
            axis=1,
        ),
        "按时间倒序处理了序列（ran the sequence backwards）": ref.simple_rnn(
            x,
            ref.SimpleRNNParams(W_xh=W_xh, W_hh=W_hh, b_h=b_h),
            return_sequences=True,
            go_backwards=True,
            initial_state=h0,
        ),
    }
    if h0 is not None:
        found["忽略了初始状态 h0（h0 ignored）"] = reference_sequence(x, W_xh, W_hh, b_h)
    return found


def simple_rnn_sequence(func, namespace: dict | None = None, name="simple_rnn_sequence") -> None:
    """Check ``simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None)`` -> (N, T, H).

    The learner's ``simple_rnn_step`` is replaced by a correct one meanwhile, so that a wrong
    step costs the step's points only.
    """
    use_correct_earlier_functions(namespace, {"simple_rnn_step": ref.simple_rnn_step}, ORDER, name)
    check_cases(name, func, sequence_cases(f"rnn.{name}"), reference_sequence, sequence_mistakes)
