"""Seeded inputs for the hidden tests: several shapes per function, each from its own generator.

Shapes are (N, D, H): batch 1 is included, H differs from D in most cases, and the first case
has D == H so that swapped input and recurrent weights give values (a recognisable mistake)
rather than a shape error. Weights are random, never constant: a constant weight gives every
unit the same value and hides swapped gates.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from rnn_ref.keras_weights import KerasLayout

from .core import Case

STEP_SHAPES = ((2, 4, 4), (1, 3, 5), (3, 5, 2), (4, 2, 3))
"""(N, D, H) of the step cases."""

Weights = tuple[np.ndarray, np.ndarray, np.ndarray | None]
"""``(W_x, W_h, b)`` of one gate or layer; ``b`` is None for no bias."""

SEQUENCE_SHAPES = ((2, 3, 3, 3), (1, 4, 2, 5), (3, 1, 4, 2))
"""(N, T, D, H) of the sequence cases; T = 1 is included."""


def generator(name: str, salt: int = 0) -> np.random.Generator:
    """A generator seeded from the check's name, so every check has its own fixed cases."""
    return np.random.default_rng([zlib.crc32(name.encode()), salt])


def weights(
    rng: np.random.Generator, D: int, H: int, bias: bool = True, scale: float = 0.6
) -> Weights:
    """``(W_x (D, H), W_h (H, H), b (H,) or None)`` with values of order ``scale``."""
    W_x = rng.normal(0.0, scale, (D, H))
    W_h = rng.normal(0.0, scale, (H, H))
    b = rng.normal(0.0, scale, H) if bias else None
    return W_x, W_h, b


def step_inputs(rng: np.random.Generator, N: int, D: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    """``x_t`` (N, D) and ``h_prev`` (N, H), the latter in (-1, 1) like a tanh state."""
    return rng.normal(0.0, 1.0, (N, D)), rng.uniform(-1.0, 1.0, (N, H))


def label(**dims: int) -> str:
    """A case's name in feedback, from its dimensions: ``case N=2, T=3``."""
    return "case " + ", ".join(f"{k}={v}" for k, v in dims.items())


def gate_cases(
    name: str, *, bias: bool = True, large: bool = True, without_bias_case: bool = True
) -> list[Case]:
    """Cases ``(x_t, h_prev, W_x, W_h, b)`` for a gate; ``bias=False`` passes no bias at all.

    With ``bias=True`` one case still passes ``b=None`` (the signatures' default, no bias),
    unless ``without_bias_case`` is false: a grade cell of its own checks the case without bias.
    ``large`` adds inputs of order 1e4: a correct but naive sigmoid overflows in ``exp`` there,
    which must cost nothing.
    """
    rng = generator(name)
    cases = []
    args: tuple[np.ndarray | None, ...]
    for i, (N, D, H) in enumerate(STEP_SHAPES):
        x_t, h_prev = step_inputs(rng, N, D, H)
        W_x, W_h, b = weights(rng, D, H, bias=bias and (i != 3 or not without_bias_case))
        args = (x_t, h_prev, W_x, W_h) if not bias else (x_t, h_prev, W_x, W_h, b)
        cases.append(Case(args, label(N=N, D=D, H=H) + ("" if b is not None else ", b=None")))
    if large:
        N, D, H = 3, 2, 4
        x_t, h_prev = step_inputs(rng, N, D, H)
        W_x, W_h, b = weights(rng, D, H, bias=bias)
        args = (x_t * 1e4, h_prev, W_x, W_h) + ((b,) if bias else ())
        cases.append(Case(args, label(N=N, D=D, H=H) + ", |x| ~ 1e4"))
    return cases


def sequence_inputs(rng: np.random.Generator, N: int, T: int, D: int) -> np.ndarray:
    """A random input sequence of shape (N, T, D)."""
    return rng.normal(0.0, 1.0, (N, T, D))


def initial_state(rng: np.random.Generator, N: int, H: int) -> np.ndarray:
    """A random initial state of shape (N, H), inside tanh's range."""
    return rng.uniform(-1.0, 1.0, (N, H))


def sequence_cases(
    name: str,
    weights: Callable[[np.random.Generator, int, int, int], tuple[tuple, str]],
    initial_states: Callable[[np.random.Generator, int, int], dict[str, np.ndarray]],
) -> list[Case]:
    """Cases ``(x, *weights[, *initial states])``, one per shape of :data:`SEQUENCE_SHAPES`.

    ``weights(rng, D, H, i)`` gives case ``i``'s weight arguments and what its label adds (such
    as ``", b_h=None"``). The second case also passes the initial states, ``initial_states(rng,
    N, H)``: state name -> (N, H) array.
    """
    rng = generator(name)
    cases = []
    for i, (N, T, D, H) in enumerate(SEQUENCE_SHAPES):
        x = sequence_inputs(rng, N, T, D)
        args, note = weights(rng, D, H, i)
        dims = label(N=N, T=T, D=D, H=H)
        if i == 1:
            states = initial_states(rng, N, H)
            given = f", {' and '.join(states)} given"
            cases.append(Case((x, *args, *states.values()), dims + given))
        else:
            cases.append(Case((x, *args), dims + note))
    return cases


def keras_cases(name: str, layout: KerasLayout) -> list[Case]:
    """Cases ``(x, kernel, recurrent_kernel, bias)``: random weights in Keras's ``layout``."""
    rng = generator(name)
    k = len(layout.gates)
    cases = []
    for N, T, D, H in ((2, 4, 3, 5), (1, 3, 4, 2)):
        kernel = rng.normal(0.0, 0.5, (D, k * H))
        recurrent_kernel = rng.normal(0.0, 0.5, (H, k * H))
        bias = rng.normal(0.0, 0.5, (2, k * H) if layout.two_bias_rows else (k * H,))
        x = sequence_inputs(rng, N, T, D)
        cases.append(Case((x, kernel, recurrent_kernel, bias), label(N=N, T=T, D=D, H=H)))
    return cases
