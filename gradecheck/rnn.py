"""Hidden tests of the ``rnn`` assignment: the simple RNN step and a run over a sequence."""

from __future__ import annotations

import rnn_ref as ref

from . import cases as c
from . import simple_rnn
from .core import check_cases
from .mistakes import gate_mistakes
from .substitution import use_correct_earlier_functions

ORDER = ("simple_rnn_step", "simple_rnn_sequence")
"""The graded functions in the order the notebook defines them."""


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


def simple_rnn_sequence(func, namespace: dict | None = None) -> None:
    """Check ``simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None)`` -> (N, T, H).

    The learner's ``simple_rnn_step`` is replaced by a correct one meanwhile, so that a wrong
    step costs the step's points only.
    """
    name = "simple_rnn_sequence"
    use_correct_earlier_functions(namespace, {"simple_rnn_step": ref.simple_rnn_step}, ORDER, name)
    simple_rnn.check_sequence(name, func)
