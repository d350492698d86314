"""The simple RNN as the notebooks write it, shared by the ``rnn`` and ``brnn`` checks.

Both notebooks run a simple RNN over a sequence with the signature
``(x, W_xh, W_hh, b_h=None, h0=None)``: this module has its reference, its seeded cases and the
known wrong versions of such a run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import rnn_ref as ref

from . import cases as c
from . import mistakes as m
from .core import Case, check_cases

SEQUENCE_CASES = "rnn.simple_rnn_sequence"
"""The seed of the sequence cases: the ``rnn`` assignment's, which ``brnn`` checks again."""


def layer(
    weights: tuple[np.ndarray, np.ndarray, np.ndarray | None], **options: Any
) -> ref.SimpleRNN:
    """A ``rnn_ref.SimpleRNN`` returning sequences, from ``(W_xh, W_hh, b_h)``."""
    W_xh, W_hh, b_h = weights
    params = ref.SimpleRNNParams(W_xh=W_xh, W_hh=W_hh, b_h=b_h)
    return ref.SimpleRNN(params=params, return_sequences=True, **options)


def reference_sequence(
    x: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray | None = None,
    h0: np.ndarray | None = None,
) -> np.ndarray:
    """The reference layer's output sequence, with the notebook's parameter names."""
    return layer((W_xh, W_hh, b_h))(x, initial_state=h0)


def _weights(rng: np.random.Generator, D: int, H: int, i: int) -> tuple[tuple[Any, ...], str]:
    W_xh, W_hh, b_h = c.weights(rng, D, H, bias=i != 2)
    return (W_xh, W_hh, b_h), "" if b_h is not None else ", b_h=None"


def sequence_cases(name: str) -> list[Case]:
    """Cases ``(x, W_xh, W_hh, b_h[, h0])``: with and without bias, with and without ``h0``."""
    return c.sequence_cases(name, _weights, lambda rng, N, H: {"h0": c.initial_state(rng, N, H)})


def sequence_mistakes(
    x: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray | None = None,
    h0: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """A loop that forgets to carry the state, runs backwards, or returns only the last step."""
    start = np.zeros((x.shape[0], W_hh.shape[0])) if h0 is None else h0
    found = {
        m.LAST_STEP_ONLY: reference_sequence(x, W_xh, W_hh, b_h, h0)[:, -1],
        m.STATE_NOT_CARRIED: np.stack(
            [ref.simple_rnn_step(x[:, t], start, W_xh, W_hh, b_h) for t in range(x.shape[1])],
            axis=1,
        ),
        m.RAN_BACKWARDS: layer((W_xh, W_hh, b_h), go_backwards=True)(x, initial_state=h0),
    }
    if h0 is not None:
        found[m.initial_states_ignored(("h0",))] = reference_sequence(x, W_xh, W_hh, b_h)
    return found


def check_sequence(name: str, func: object) -> None:
    """Check ``func(x, W_xh, W_hh, b_h=None, h0=None) -> (N, T, H)`` on the sequence cases."""
    check_cases(name, func, sequence_cases(SEQUENCE_CASES), reference_sequence, sequence_mistakes)
