r"""Long short-term memory (LSTM): a cell state :math:`c_t` guarded by three gates.

Each function below is one equation of the notes, in the row-vector form Keras computes
(the notes' :math:`W_f [h_{t-1}, x_t]` is :math:`x_t W_{xf} + h_{t-1} W_{hf}` here):

.. math::

    g_f &= \sigma(x_t W_{xf} + h_{t-1} W_{hf} + b_f)          && \text{forget gate} \\
    g_i &= \sigma(x_t W_{xi} + h_{t-1} W_{hi} + b_i)          && \text{input gate} \\
    \bar c_t &= \tanh(x_t W_{xc} + h_{t-1} W_{hc} + b_c)      && \text{candidate cell state} \\
    c_t &= g_f \odot c_{t-1} + g_i \odot \bar c_t             && \text{cell-state update} \\
    g_o &= \sigma(x_t W_{xo} + h_{t-1} W_{ho} + b_o)          && \text{output gate} \\
    h_t &= g_o \odot \tanh(c_t)                               && \text{hidden output}

Shapes: N batch, T time, D input, H hidden; ``x_t`` (N, D); ``h``, ``c`` and every gate (N, H);
``W_x?`` (D, H), ``W_h?`` (H, H), ``b_?`` (H,) or ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import as_float_array, check_shape
from ._gate import (
    GateParams,
    check_params,
    check_step_inputs,
    gate,
    gate_from_projection,
    input_projections,
    run_layer,
    same_shapes,
)
from .activations import get_activation


def forget_gate(x_t, h_prev, W_xf, W_hf, b_f=None, activation="sigmoid") -> np.ndarray:
    r"""Forget gate :math:`g_f = \sigma(x_t W_{xf} + h_{t-1} W_{hf} + b_f)`, shape (N, H).

    :math:`g_f = 1` keeps all of :math:`c_{t-1}`; :math:`g_f = 0` forgets it.

    Parameters
    ----------
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    W_xf : array_like, shape (D, H)
        Input weights :math:`W_{xf}`.
    W_hf : array_like, shape (H, H)
        Recurrent weights :math:`W_{hf}`.
    b_f : array_like, shape (H,), optional
        Bias :math:`b_f`; ``None`` for a layer without bias (``use_bias=False``).
    activation : str or callable
        The gate's activation (Keras's ``recurrent_activation``), ``"sigmoid"`` by default.

    Returns
    -------
    ndarray, shape (N, H)
        :math:`g_f`, in (0, 1) for the sigmoid.
    """
    return gate(x_t, h_prev, W_xf, W_hf, b_f, activation, ("W_xf", "W_hf", "b_f"))


def input_gate(x_t, h_prev, W_xi, W_hi, b_i=None, activation="sigmoid") -> np.ndarray:
    r"""Input gate :math:`g_i = \sigma(x_t W_{xi} + h_{t-1} W_{hi} + b_i)`, shape (N, H).

    :math:`g_i = 1` lets all of the candidate :math:`\bar c_t` in; :math:`g_i = 0` none of it.

    Parameters
    ----------
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    W_xi : array_like, shape (D, H)
        Input weights :math:`W_{xi}`.
    W_hi : array_like, shape (H, H)
        Recurrent weights :math:`W_{hi}`.
    b_i : array_like, shape (H,), optional
        Bias :math:`b_i`; ``None`` for a layer without bias (``use_bias=False``).
    activation : str or callable
        ``"sigmoid"`` by default.

    Returns
    -------
    ndarray, shape (N, H)
        :math:`g_i`, in (0, 1) for the sigmoid.
    """
    return gate(x_t, h_prev, W_xi, W_hi, b_i, activation, ("W_xi", "W_hi", "b_i"))


def candidate_cell_state(x_t, h_prev, W_xc, W_hc, b_c=None, activation="tanh") -> np.ndarray:
    r"""Candidate cell state :math:`\bar c_t = \tanh(x_t W_{xc} + h_{t-1} W_{hc} + b_c)`, (N, H).

    Parameters
    ----------
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    W_xc : array_like, shape (D, H)
        Input weights :math:`W_{xc}`.
    W_hc : array_like, shape (H, H)
        Recurrent weights :math:`W_{hc}`.
    b_c : array_like, shape (H,), optional
        Bias :math:`b_c`; ``None`` for a layer without bias (``use_bias=False``).
    activation : str or callable
        Keras's ``activation``, ``"tanh"`` by default.

    Returns
    -------
    ndarray, shape (N, H)
        :math:`\bar c_t`, in (-1, 1) for tanh.
    """
    return gate(x_t, h_prev, W_xc, W_hc, b_c, activation, ("W_xc", "W_hc", "b_c"))


def cell_state_update(c_prev, g_f, g_i, c_bar) -> np.ndarray:
    r"""Compute the new cell state :math:`c_t = g_f \odot c_{t-1} + g_i \odot \bar c_t`.

    Parameters
    ----------
    c_prev : array_like, shape (N, H)
        :math:`c_{t-1}`.
    g_f, g_i : array_like, shape (N, H)
        Forget and input gates.
    c_bar : array_like, shape (N, H)
        Candidate cell state :math:`\bar c_t`.

    Returns
    -------
    ndarray, shape (N, H)
        :math:`c_t`.
    """
    c_prev, g_f, g_i, c_bar = same_shapes(c_prev=c_prev, g_f=g_f, g_i=g_i, c_bar=c_bar)
    return _cell_state_update(c_prev, g_f, g_i, c_bar)


def _cell_state_update(c_prev, g_f, g_i, c_bar):
    return g_f * c_prev + g_i * c_bar


def output_gate(x_t, h_prev, W_xo, W_ho, b_o=None, activation="sigmoid") -> np.ndarray:
    r"""Output gate :math:`g_o = \sigma(x_t W_{xo} + h_{t-1} W_{ho} + b_o)`, shape (N, H).

    :math:`g_o = 1` shows all of :math:`\tanh(c_t)` as output; :math:`g_o = 0` outputs zeros.

    Parameters
    ----------
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    W_xo : array_like, shape (D, H)
        Input weights :math:`W_{xo}`.
    W_ho : array_like, shape (H, H)
        Recurrent weights :math:`W_{ho}`.
    b_o : array_like, shape (H,), optional
        Bias :math:`b_o`; ``None`` for a layer without bias (``use_bias=False``).
    activation : str or callable
        ``"sigmoid"`` by default.

    Returns
    -------
    ndarray, shape (N, H)
        :math:`g_o`, in (0, 1) for the sigmoid.
    """
    return gate(x_t, h_prev, W_xo, W_ho, b_o, activation, ("W_xo", "W_ho", "b_o"))


def hidden_output(g_o, c_t, activation="tanh") -> np.ndarray:
    r"""Hidden output :math:`h_t = g_o \odot \tanh(c_t)`.

    Parameters
    ----------
    g_o : array_like, shape (N, H)
        Output gate.
    c_t : array_like, shape (N, H)
        New cell state.
    activation : str or callable
        Keras's ``activation``, ``"tanh"`` by default.

    Returns
    -------
    ndarray, shape (N, H)
        :math:`h_t`, the step's output and next hidden state.
    """
    g_o, c_t = same_shapes(g_o=g_o, c_t=c_t)
    return _hidden_output(g_o, c_t, get_activation(activation))


def _hidden_output(g_o, c_t, activation):
    return g_o * activation(c_t)


@dataclass(frozen=True, kw_only=True)
class LSTMParams(GateParams):
    """Per-gate weights of an LSTM: ``W_x?`` (D, H), ``W_h?`` (H, H), ``b_?`` (H,) or ``None``.

    The biases are all given or all ``None`` (a layer with ``use_bias=False``);
    ``input_size`` (D), ``hidden_size`` (H) and ``use_bias`` are read off the weights.
    """

    W_xi: np.ndarray
    W_hi: np.ndarray
    b_i: np.ndarray | None
    W_xf: np.ndarray
    W_hf: np.ndarray
    b_f: np.ndarray | None
    W_xc: np.ndarray
    W_hc: np.ndarray
    b_c: np.ndarray | None
    W_xo: np.ndarray
    W_ho: np.ndarray
    b_o: np.ndarray | None

    gates = "fico"
    state_names = ("h0", "c0")


def lstm_step(
    x_t, h_prev, c_prev, params: LSTMParams, *, activation="tanh", recurrent_activation="sigmoid"
) -> tuple[np.ndarray, np.ndarray]:
    r"""One LSTM step built from the gates: returns :math:`(h_t, c_t)`, each (N, H).

    Parameters
    ----------
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev, c_prev : array_like, shape (N, H)
        States :math:`h_{t-1}` and :math:`c_{t-1}`.
    params : LSTMParams
        The four gates' weights.
    activation : str or callable
        For :math:`\bar c_t` and :math:`h_t` (``"tanh"``).
    recurrent_activation : str or callable
        For the three gates (``"sigmoid"``).

    Returns
    -------
    h_t, c_t : ndarray, shape (N, H)
        The new hidden state (the step's output) and cell state.
    """
    x_t, h_prev = check_step_inputs(x_t, h_prev)
    c_prev = as_float_array(c_prev, "c_prev", ndim=2)
    check_shape(c_prev, "c_prev", h_prev.shape, "(N, H)")
    check_params(params, LSTMParams, x_t.shape[1], h_prev.shape[1])
    act, rec_act = get_activation(activation), get_activation(recurrent_activation)
    projections = input_projections(x_t, params, params.gates)
    _, states, _ = _cell(projections, [h_prev, c_prev], params, act, rec_act)
    return tuple(states)


def lstm(
    x,
    params: LSTMParams,
    *,
    activation="tanh",
    recurrent_activation="sigmoid",
    return_sequences: bool = False,
    return_state: bool = False,
    go_backwards: bool = False,
    initial_state=None,
):
    r"""Run :func:`lstm_step` over a sequence, as ``keras.layers.LSTM`` does.

    Parameters
    ----------
    x : array_like, shape (N, T, D)
        The input sequence.
    params : LSTMParams
        The four gates' weights.
    activation, recurrent_activation : str or callable
        As for :func:`lstm_step` (``"tanh"``, ``"sigmoid"``).
    return_sequences, return_state, go_backwards : bool
        As in Keras; see :func:`rnn_ref.sequence.run_over_time`.
    initial_state : list of two array_like (N, H), optional
        ``[h_0, c_0]`` in Keras's order; zeros by default.

    Returns
    -------
    ndarray or list of ndarray
        The output, shape (N, H) or with ``return_sequences`` (N, T, H); with
        ``return_state``, ``[output, h_T, c_T]``.
    """
    return run_layer(
        _cell,
        x,
        params,
        LSTMParams,
        (activation, recurrent_activation),
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        initial_state=initial_state,
    )


def _cell(projections_t, states, p: LSTMParams, act, rec_act):
    # The one forward step of lstm_step, lstm and their backward pass: each gate's unchecked
    # kernel, the one that the public gate function calls after its checks, on x_t W_x? + b_?
    # computed before (in the order of LSTMParams.gates). The cache is what the backward reads.
    x_f, x_i, x_c, x_o = projections_t
    h_prev, c_prev = states
    g_f = gate_from_projection(x_f, h_prev, p.W_hf, rec_act)
    g_i = gate_from_projection(x_i, h_prev, p.W_hi, rec_act)
    c_bar = gate_from_projection(x_c, h_prev, p.W_hc, act)
    c_t = _cell_state_update(c_prev, g_f, g_i, c_bar)
    g_o = gate_from_projection(x_o, h_prev, p.W_ho, rec_act)
    s_t = act(c_t)
    h_t = g_o * s_t  # the hidden output g_o * tanh(c_t), keeping tanh(c_t) for the backward
    cache = {"h_prev": h_prev, "c_prev": c_prev, "g_f": g_f, "g_i": g_i, "c_bar": c_bar}
    return h_t, [h_t, c_t], cache | {"g_o": g_o, "s_t": s_t}
