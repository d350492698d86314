"""Hidden tests of the ``rnn`` assignment: the simple RNN step and a run over a sequence."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import rnn_ref as ref

from . import cases as c
from . import simple_rnn
from .core import check_cases
from .mistakes import gate_mistakes
from .substitution import scored_alone

ORDER = ("simple_rnn_step", "simple_rnn_sequence")
"""The graded functions in the order the notebook defines them."""


def correct_functions() -> dict[str, Callable[..., Any]]:
    """A correct version of every graded function, with the notebook's parameters."""
    return {
        "simple_rnn_step": ref.simple_rnn_step,
        "simple_rnn_sequence": simple_rnn.reference_sequence,
    }


@scored_alone(correct_functions)
def simple_rnn_step(func: object, *, bias: bool) -> None:
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


@scored_alone(correct_functions)
def simple_rnn_sequence(func: object) -> None:
    """Check ``simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None)`` -> (N, T, H)."""
    name = "simple_rnn_sequence"
    simple_rnn.check_sequence(name, func)
