"""Random weights for the tests: one builder, from a NumPy generator or hypothesis.

:func:`random_params` draws rnn_ref parameters from a seeded generator (the ``rng`` fixture's),
for tests whose cases are fixed; :func:`params_strategy` draws the same parameters with
hypothesis, whose failures then shrink to small weights. Both assemble the arrays with
:func:`params_from_arrays`. :func:`random_keras_weights` draws weights laid out as a Keras layer
holds them; :func:`arrays` is the hypothesis strategy of every drawn array.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rnn_ref

GATES = {"simple_rnn": "h", "lstm": "ifco", "gru": "zrh"}
"""Each layer kind's gate letters, in the order the weights are drawn."""


def params_from_arrays(
    kind: str, arrays: Mapping[str, np.ndarray | None], *, reset_after: bool, convention: str
):
    """The params object of ``kind`` (``"simple_rnn"``, ``"lstm"``, ``"gru"``) with ``arrays``."""
    if kind == "simple_rnn":
        return rnn_ref.SimpleRNNParams(**arrays)
    if kind == "lstm":
        return rnn_ref.LSTMParams(**arrays)
    return rnn_ref.GRUParams(reset_after=reset_after, update_convention=convention, **arrays)


def random_params(
    kind: str,
    rng: np.random.Generator,
    d: int,
    h: int,
    *,
    use_bias: bool = True,
    reset_after: bool = False,
    convention: str = "notes",
    scales: tuple[float, float] = (0.7, 0.5),
    recurrent_scale: float | None = None,
    biases: Mapping[str, float] | None = None,
):
    """Random parameters of a ``"simple_rnn"``, ``"lstm"`` or ``"gru"`` layer.

    Weights are normal with standard deviation ``scales[0]`` (``recurrent_scale`` for the
    ``W_h?``, if given), biases ``scales[1]``; ``biases`` fixes the bias of some gates to a
    constant (e.g. ``{"f": -50.0}`` for a closed forget gate). A GRU with ``reset_after`` and
    biases has a random ``b_hh`` too.
    """
    weight_scale, bias_scale = scales
    biases = biases or {}
    arrays: dict[str, np.ndarray | None] = {}
    for g in GATES[kind]:
        arrays[f"W_x{g}"] = rng.normal(scale=weight_scale, size=(d, h))
        arrays[f"W_h{g}"] = rng.normal(scale=recurrent_scale or weight_scale, size=(h, h))
        if g in biases:
            arrays[f"b_{g}"] = np.full(h, float(biases[g]))
        else:
            arrays[f"b_{g}"] = rng.normal(scale=bias_scale, size=h) if use_bias else None
    if kind == "gru" and reset_after:
        arrays["b_hh"] = rng.normal(scale=bias_scale, size=h) if use_bias else None
    return params_from_arrays(kind, arrays, reset_after=reset_after, convention=convention)


def random_keras_weights(rng: np.random.Generator, layout, d: int, h: int) -> list[np.ndarray]:
    """Random ``[kernel, recurrent_kernel, bias]`` in a Keras layout (``rnn_ref.keras_weights``).

    Normal with standard deviation 1; the bias has two rows where the layout has
    (``two_bias_rows``, the GRU with ``reset_after``).
    """
    k = len(layout.gates)
    bias_shape = (2, k * h) if layout.two_bias_rows else (k * h,)
    return [rng.normal(size=(d, k * h)), rng.normal(size=(h, k * h)), rng.normal(size=bias_shape)]


def arrays(shape, bound: float = 2.0) -> st.SearchStrategy[np.ndarray]:
    """Float64 arrays of ``shape`` (a tuple or a strategy of tuples), finite, in [-bound, bound]."""
    elements = st.floats(-bound, bound, allow_nan=False, allow_infinity=False)
    return hnp.arrays(np.float64, shape, elements=elements)


@st.composite
def params_strategy(
    draw,
    kind: str,
    d: int,
    h: int,
    *,
    use_bias: bool = True,
    reset_after: bool = False,
    convention: str = "notes",
    bound: float = 1.5,
):
    """Parameters as :func:`random_params` builds them, their values drawn by hypothesis.

    All the weights are one drawn array, cut into the fields (one draw is several times faster
    than one per field, and shrinks the same way).
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for g in GATES[kind]:
        shapes[f"W_x{g}"], shapes[f"W_h{g}"] = (d, h), (h, h)
        if use_bias:
            shapes[f"b_{g}"] = (h,)
    if kind == "gru" and reset_after and use_bias:
        shapes["b_hh"] = (h,)
    flat = draw(arrays((sum(int(np.prod(s)) for s in shapes.values()),), bound))
    fields: dict[str, np.ndarray | None] = {}
    start = 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        fields[name] = flat[start : start + size].reshape(shape)
        start += size
    if not use_bias:
        fields.update({f"b_{g}": None for g in GATES[kind]})
    return params_from_arrays(kind, fields, reset_after=reset_after, convention=convention)
