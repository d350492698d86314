r"""The simple (Elman) RNN: one state vector and one equation.

.. math:: h_t = \tanh(x_t W_{xh} + h_{t-1} W_{hh} + b_h)

Shapes: N batch, T time, D input, H hidden; ``x_t`` (N, D), ``h_t`` (N, H).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._gate import check_params, convert_gate_params, gate, gate_from_projection, input_projections
from .activations import get_activation
from .sequence import check_sequence, initial_states, run_over_time

_NAMES = ("W_xh", "W_hh", "b_h")


def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None, activation="tanh") -> np.ndarray:
    r"""One step of the simple RNN.

    .. math:: h_t = f(x_t W_{xh} + h_{t-1} W_{hh} + b_h)

    The notes write the same map with column vectors, :math:`f(W_{xh} x_t + W_{hh} h_{t-1} + b)`;
    the matrices here are their transposes.

    Parameters
    ----------
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    W_xh : array_like, shape (D, H)
        Input weights (Keras's ``kernel``).
    W_hh : array_like, shape (H, H)
        Recurrent weights (Keras's ``recurrent_kernel``).
    b_h : array_like, shape (H,), optional
        Bias; ``None`` for a layer without bias (``use_bias=False``).
    activation : str or callable
        :math:`f`, ``"tanh"`` by default.

    Returns
    -------
    ndarray, shape (N, H)
        The new state :math:`h_t`, which is also the step's output.
    """
    return gate(x_t, h_prev, W_xh, W_hh, b_h, activation, _NAMES)


@dataclass(frozen=True, kw_only=True)
class SimpleRNNParams:
    """Weights of a simple RNN: ``W_xh`` (D, H), ``W_hh`` (H, H), ``b_h`` (H,) or ``None``."""

    W_xh: np.ndarray
    W_hh: np.ndarray
    b_h: np.ndarray | None = None

    def __post_init__(self):
        convert_gate_params(self, ("h",))

    @property
    def input_size(self) -> int:
        """D, the size of each input vector."""
        return self.W_xh.shape[0]

    @property
    def hidden_size(self) -> int:
        """H, the size of the state."""
        return self.W_xh.shape[1]


def simple_rnn(
    x,
    params: SimpleRNNParams,
    *,
    activation="tanh",
    return_sequences: bool = False,
    return_state: bool = False,
    go_backwards: bool = False,
    initial_state=None,
):
    r"""Run :func:`simple_rnn_step` over a sequence, as ``keras.layers.SimpleRNN`` does.

    Parameters
    ----------
    x : array_like, shape (N, T, D)
    params : SimpleRNNParams
    activation : str or callable
    return_sequences, return_state, go_backwards : bool
        As in Keras; see :func:`rnn_ref.sequence.run_over_time`.
    initial_state : array_like (N, H) or list of one, optional
        :math:`h_0`; zeros by default.

    Returns
    -------
    ndarray, shape (N, H) or (N, T, H); or ``[output, h_T]`` with ``return_state``
    """
    x = check_sequence(x)
    check_params(params, SimpleRNNParams, x.shape[2])
    f = get_activation(activation)
    states = initial_states(initial_state, x.shape[0], params.hidden_size, ["h0"])

    def step(projection_t, states):
        h_t = gate_from_projection(projection_t[0], states[0], params.W_hh, f)
        return h_t, [h_t]

    return run_over_time(
        step,
        input_projections(x, params, "h"),
        states,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
    )
