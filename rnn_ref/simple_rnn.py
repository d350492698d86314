r"""The simple (Elman) RNN: one state vector and one equation.

.. math:: h_t = \tanh(x_t W_{xh} + h_{t-1} W_{hh} + b_h)

Shapes: N batch, T time, D input, H hidden; ``x_t`` (N, D), ``h_t`` (N, H).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._gate import GateParams, gate, gate_from_projection, run_layer

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
class SimpleRNNParams(GateParams):
    """Weights of a simple RNN: ``W_xh`` (D, H), ``W_hh`` (H, H), ``b_h`` (H,) or ``None``.

    ``input_size`` (D), ``hidden_size`` (H) and ``use_bias`` are read off the weights.
    """

    W_xh: np.ndarray
    W_hh: np.ndarray
    b_h: np.ndarray | None = None

    gates = "h"
    state_names = ("h0",)


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
        The input sequence.
    params : SimpleRNNParams
        The layer's weights.
    activation : str or callable
        :math:`f`, ``"tanh"`` by default.
    return_sequences, return_state, go_backwards : bool
        As in Keras; see :func:`rnn_ref.sequence.run_over_time`.
    initial_state : array_like (N, H) or list of one, optional
        :math:`h_0`; zeros by default.

    Returns
    -------
    ndarray or list of ndarray
        The output, shape (N, H) or with ``return_sequences`` (N, T, H); with
        ``return_state``, ``[output, h_T]``.
    """
    return run_layer(
        _cell,
        x,
        params,
        SimpleRNNParams,
        (activation,),
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        initial_state=initial_state,
    )


def _cell(projections_t, states, p: SimpleRNNParams, act):
    # The one forward step of simple_rnn and of its backward pass: simple_rnn_step's unchecked
    # kernel, on x_t W_xh + b_h computed before; the cache is what the backward pass reads.
    (h_prev,) = states
    h_t = gate_from_projection(projections_t[0], h_prev, p.W_hh, act)
    return h_t, [h_t], {"h_prev": h_prev, "h_t": h_t}
