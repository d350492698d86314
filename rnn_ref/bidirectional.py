r"""Bidirectional RNNs: one layer reads the sequence forwards, another backwards.

As in ``keras.layers.Bidirectional``, the backward layer runs with ``go_backwards=True``; when
sequences are returned its output is flipped back in time before the merge, so that step
:math:`t` of both directions lines up:

.. math:: y_t = \mathrm{merge}(\overrightarrow{h}_t, \overleftarrow{h}_t).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ._checks import as_float_array, check_choice
from .layers import RecurrentLayer

MERGE_MODES = ("concat", "sum", "mul", "ave", None)
"""The values of ``merge_mode`` that :func:`merge` and :func:`bidirectional` accept (Keras's)."""


def merge(y_forward, y_backward, merge_mode="concat"):
    """Combine the two directions' outputs as Keras's ``merge_mode`` does.

    Parameters
    ----------
    y_forward, y_backward : array_like, shape (N, H) or (N, T, H)
        Outputs already aligned in time.
    merge_mode : {"concat", "sum", "mul", "ave", None}
        ``"concat"`` joins the last axis (2H); ``"sum"``, ``"mul"``, ``"ave"`` are elementwise;
        ``None`` returns both, ``[y_forward, y_backward]``.

    Returns
    -------
    ndarray or list of two ndarray
        Shape (N, [T,] 2H) for ``"concat"``, else (N, [T,] H); for ``None`` the two outputs.
    """
    check_choice(merge_mode, "merge_mode", MERGE_MODES)
    y_forward = as_float_array(y_forward, "y_forward")
    y_backward = as_float_array(y_backward, "y_backward")
    if y_forward.shape != y_backward.shape:
        raise ValueError(
            f"y_forward and y_backward must have the same shape, got {y_forward.shape} "
            f"and {y_backward.shape}"
        )
    if merge_mode == "concat":
        return np.concatenate([y_forward, y_backward], axis=-1)
    if merge_mode == "sum":
        return y_forward + y_backward
    if merge_mode == "mul":
        return y_forward * y_backward
    if merge_mode == "ave":
        return (y_forward + y_backward) / 2.0
    return [y_forward, y_backward]


def bidirectional(
    x,
    forward: RecurrentLayer,
    backward: RecurrentLayer | None = None,
    *,
    merge_mode="concat",
    initial_state=None,
):
    """Run ``forward`` and ``backward`` over ``x`` and merge them, as ``Bidirectional`` does.

    Parameters
    ----------
    x : array_like, shape (N, T, D)
        The input sequence, which both directions read.
    forward : RecurrentLayer
        The forward direction, a layer spec (:class:`rnn_ref.layers.SimpleRNN`, ``LSTM`` or
        ``GRU``).
    backward : RecurrentLayer, optional
        Must have the opposite ``go_backwards`` of ``forward`` and the same
        ``return_sequences`` and ``return_state`` (Keras's rules). By default, ``forward`` with
        ``go_backwards`` flipped, i.e. the *same weights*; Keras's default backward layer is a
        copy with its own weights, so pass it to reproduce a Keras layer
        (:func:`rnn_ref.keras_weights.from_keras` does).
    merge_mode : {"concat", "sum", "mul", "ave", None}
        How the two outputs are combined; see :func:`merge`.
    initial_state : list of arrays, optional
        The forward layer's initial states followed by the backward layer's.

    Returns
    -------
    ndarray or list of ndarray
        The merged output, shape (N, [T,] 2H) for ``"concat"`` else (N, [T,] H); with
        ``merge_mode=None`` a list of the two outputs. With ``return_state``, the forward
        layer's final states and then the backward layer's follow the output(s) in one list.
    """
    check_choice(merge_mode, "merge_mode", MERGE_MODES)
    if backward is None:
        backward = dataclasses.replace(forward, go_backwards=not forward.go_backwards)
    _check_pair(forward, backward)
    forward_state, backward_state = _split_initial_state(initial_state, forward, backward)
    x = as_float_array(x, "x", ndim=3)

    y_forward = forward(x, initial_state=forward_state)
    y_backward = backward(x, initial_state=backward_state)
    states = []
    if forward.return_state:
        states = [*y_forward[1:], *y_backward[1:]]
        y_forward, y_backward = y_forward[0], y_backward[0]
    if forward.return_sequences:
        y_backward = y_backward[:, ::-1, :]  # back into forward time order

    merged = merge(y_forward, y_backward, merge_mode)
    if not forward.return_state:
        return merged
    return [*merged, *states] if merge_mode is None else [merged, *states]


@dataclass(frozen=True, kw_only=True)
class Bidirectional:
    """``keras.layers.Bidirectional`` with the given layers; see :func:`bidirectional`."""

    forward: RecurrentLayer
    backward: RecurrentLayer
    merge_mode: str | None = "concat"

    def __post_init__(self):
        """Check ``merge_mode`` and that the two directions make a pair (Keras's rules)."""
        check_choice(self.merge_mode, "merge_mode", MERGE_MODES)
        _check_pair(self.forward, self.backward)

    @property
    def return_sequences(self) -> bool:
        """Whether the layer returns every step, like its two directions."""
        return self.forward.return_sequences

    @property
    def return_state(self) -> bool:
        """Whether the layer returns final states, like its two directions."""
        return self.forward.return_state

    def __call__(self, x, initial_state=None):
        """Run both directions over ``x`` and merge them: :func:`bidirectional` with this spec.

        Parameters
        ----------
        x : array_like, shape (N, T, D)
            The input sequence.
        initial_state : list of arrays, optional
            The forward layer's initial states followed by the backward layer's.

        Returns
        -------
        ndarray or list of ndarray
            As for :func:`bidirectional`.
        """
        return bidirectional(
            x, self.forward, self.backward, merge_mode=self.merge_mode, initial_state=initial_state
        )


def _check_pair(forward, backward) -> None:
    if forward.go_backwards == backward.go_backwards:
        raise ValueError(
            "forward and backward layers must have opposite go_backwards, "
            f"got {forward.go_backwards} for both"
        )
    for option in ("return_sequences", "return_state"):
        if getattr(forward, option) != getattr(backward, option):
            raise ValueError(
                f"forward and backward layers must agree on {option}, got "
                f"{getattr(forward, option)} and {getattr(backward, option)}"
            )


def _split_initial_state(initial_state, forward, backward):
    if initial_state is None:
        return None, None
    expected = len(forward.state_names) + len(backward.state_names)
    if not isinstance(initial_state, list | tuple) or len(initial_state) != expected:
        count = len(initial_state) if isinstance(initial_state, list | tuple) else "not a list"
        raise ValueError(
            f"initial_state must be a list of {expected} arrays (forward states "
            f"{list(forward.state_names)} then backward states {list(backward.state_names)}), "
            f"got {count}"
        )
    half = len(forward.state_names)
    return list(initial_state[:half]), list(initial_state[half:])
