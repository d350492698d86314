r"""Gated recurrent unit (GRU): one state, a reset gate and an update gate.

The notes' GRU, in the row-vector form (their :math:`W_r [h_{t-1}, x_t]` is
:math:`x_t W_{xr} + h_{t-1} W_{hr}` here):

.. math::

    g_r &= \sigma(x_t W_{xr} + h_{t-1} W_{hr} + b_r)                 && \text{reset gate} \\
    \bar h_t &= \tanh(x_t W_{xh} + (g_r \odot h_{t-1}) W_{hh} + b_h)   && \text{candidate state} \\
    g_z &= \sigma(x_t W_{xz} + h_{t-1} W_{hz} + b_z)                 && \text{update gate} \\
    h_t &= (1 - g_z) \odot h_{t-1} + g_z \odot \bar h_t              && \text{new state}

Keras differs in two ways, both named explicitly here and never guessed:

* ``reset_after=True`` (Keras's default) applies the reset gate *after* the recurrent product,
  :math:`\bar h_t = \tanh(x_t W_{xh} + b_h + g_r \odot (h_{t-1} W_{hh} + b_{hh}))`
  (:func:`candidate_state_reset_after`); ``reset_after=False`` is the notes' form
  (:func:`candidate_state`).
* Keras's update gate :math:`z` weighs the *old* state, :math:`h_t = z \odot h_{t-1} + (1 - z)
  \odot \bar h_t` (:func:`new_state_keras`), so :math:`z = 1 - g_z`; as
  :math:`1 - \sigma(a) = \sigma(-a)`, the notes' update weights are Keras's negated
  (:func:`convert_update_convention`).

Shapes: N batch, T time, D input, H hidden; ``x_t`` (N, D); ``h`` and every gate (N, H).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ._checks import check_choice, check_shape, optional_float_array
from ._gate import (
    GateParams,
    check_gate_weights,
    check_params,
    check_step_inputs,
    gate,
    gate_from_projection,
    input_projections,
    run_layer,
    same_shapes,
)
from .activations import activation_name, get_activation

# Activations f with f(-a) = 1 - f(a): the ones for which the notes' update gate g_z = 1 - z
# is the Keras gate with negated weights.
_COMPLEMENT_SYMMETRIC = frozenset({"sigmoid", "hard_sigmoid"})

UPDATE_CONVENTIONS = ("notes", "keras")
"""``"notes"``: :math:`h_t = (1 - g_z) h_{t-1} + g_z \\bar h_t`; ``"keras"``: :math:`h_t = z h_{t-1}
+ (1 - z) \\bar h_t`."""


def reset_gate(x_t, h_prev, W_xr, W_hr, b_r=None, activation="sigmoid") -> np.ndarray:
    r"""Reset gate :math:`g_r = \sigma(x_t W_{xr} + h_{t-1} W_{hr} + b_r)`, shape (N, H).

    :math:`g_r = 0` hides :math:`h_{t-1}` from the candidate state (a reset);
    :math:`g_r = 1` lets all of it in.

    Parameters
    ----------
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    W_xr : array_like, shape (D, H)
        Input weights :math:`W_{xr}`.
    W_hr : array_like, shape (H, H)
        Recurrent weights :math:`W_{hr}`.
    b_r : array_like, shape (H,), optional
        Bias :math:`b_r`; ``None`` for a layer without bias (``use_bias=False``).
    activation : str or callable
        Keras's ``recurrent_activation``, ``"sigmoid"`` by default.

    Returns
    -------
    ndarray, shape (N, H)
        :math:`g_r`, in (0, 1) for the sigmoid.
    """
    return gate(x_t, h_prev, W_xr, W_hr, b_r, activation, ("W_xr", "W_hr", "b_r"))


def update_gate(x_t, h_prev, W_xz, W_hz, b_z=None, activation="sigmoid") -> np.ndarray:
    r"""Update gate :math:`g_z = \sigma(x_t W_{xz} + h_{t-1} W_{hz} + b_z)`, shape (N, H).

    The same formula gives the notes' :math:`g_z` or Keras's :math:`z = 1 - g_z`; which one
    depends on the weights, and is decided by the state update that uses it
    (:func:`new_state` or :func:`new_state_keras`).

    Parameters
    ----------
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    W_xz : array_like, shape (D, H)
        Input weights :math:`W_{xz}`.
    W_hz : array_like, shape (H, H)
        Recurrent weights :math:`W_{hz}`.
    b_z : array_like, shape (H,), optional
        Bias :math:`b_z`; ``None`` for a layer without bias (``use_bias=False``).
    activation : str or callable
        ``"sigmoid"`` by default.

    Returns
    -------
    ndarray, shape (N, H)
        :math:`g_z` (or Keras's :math:`z`), in (0, 1) for the sigmoid.
    """
    return gate(x_t, h_prev, W_xz, W_hz, b_z, activation, ("W_xz", "W_hz", "b_z"))


def candidate_state(x_t, h_prev, g_r, W_xh, W_hh, b_h=None, activation="tanh") -> np.ndarray:
    r"""Candidate state with the reset before the product (the notes; Keras ``reset_after=False``).

    .. math:: \bar h_t = \tanh(x_t W_{xh} + (g_r \odot h_{t-1}) W_{hh} + b_h)

    Parameters
    ----------
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    g_r : array_like, shape (N, H)
        Reset gate.
    W_xh : array_like, shape (D, H)
        Input weights :math:`W_{xh}`.
    W_hh : array_like, shape (H, H)
        Recurrent weights :math:`W_{hh}`.
    b_h : array_like, shape (H,), optional
        Bias :math:`b_h`; ``None`` for a layer without bias (``use_bias=False``).
    activation : str or callable
        Keras's ``activation``, ``"tanh"`` by default.

    Returns
    -------
    ndarray, shape (N, H)
        :math:`\bar h_t`, in (-1, 1) for tanh.
    """
    x_t, h_prev = check_step_inputs(x_t, h_prev)
    h_prev, g_r = same_shapes(h_prev=h_prev, g_r=g_r)
    W_xh, W_hh, b_h = check_gate_weights(
        W_xh, W_hh, b_h, ("W_xh", "W_hh", "b_h"), x_t.shape[1], h_prev.shape[1]
    )
    projection = x_t @ W_xh if b_h is None else x_t @ W_xh + b_h
    return _candidate_state(projection, h_prev, g_r, W_hh, get_activation(activation))


def _candidate_state(projection, h_prev, g_r, W_hh, activation):
    return gate_from_projection(projection, g_r * h_prev, W_hh, activation)


def candidate_state_reset_after(
    x_t, h_prev, g_r, W_xh, W_hh, b_h=None, b_hh=None, activation="tanh"
) -> np.ndarray:
    r"""Candidate state with the reset after the product (Keras's default, ``reset_after=True``).

    .. math:: \bar h_t = \tanh(x_t W_{xh} + b_h + g_r \odot (h_{t-1} W_{hh} + b_{hh}))

    Parameters
    ----------
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    g_r : array_like, shape (N, H)
        Reset gate.
    W_xh : array_like, shape (D, H)
        Input weights :math:`W_{xh}`.
    W_hh : array_like, shape (H, H)
        Recurrent weights :math:`W_{hh}`.
    b_h : array_like, shape (H,), optional
        Input-side bias (row 0 of Keras's (2, 3H) bias).
    b_hh : array_like, shape (H,), optional
        Recurrent-side bias, inside the reset (row 1 of Keras's bias).
    activation : str or callable
        ``"tanh"`` by default.

    Returns
    -------
    ndarray, shape (N, H)
        :math:`\bar h_t`, in (-1, 1) for tanh.
    """
    x_t, h_prev = check_step_inputs(x_t, h_prev)
    h_prev, g_r = same_shapes(h_prev=h_prev, g_r=g_r)
    W_xh, W_hh, b_h = check_gate_weights(
        W_xh, W_hh, b_h, ("W_xh", "W_hh", "b_h"), x_t.shape[1], h_prev.shape[1]
    )
    b_hh = optional_float_array(b_hh, "b_hh", ndim=1)
    if b_hh is not None:
        check_shape(b_hh, "b_hh", (h_prev.shape[1],), "(H,)")
    projection = x_t @ W_xh if b_h is None else x_t @ W_xh + b_h
    return _candidate_state_reset_after(
        projection, h_prev, g_r, W_hh, b_hh, get_activation(activation)
    )


def _candidate_state_reset_after(projection, h_prev, g_r, W_hh, b_hh, activation):
    return activation(projection + g_r * _recurrent_term(h_prev, W_hh, b_hh))


def _recurrent_term(h_prev, W_hh, b_hh):
    return h_prev @ W_hh if b_hh is None else h_prev @ W_hh + b_hh


def new_state(h_prev, h_bar, g_z) -> np.ndarray:
    r"""New state, notes' convention: :math:`h_t = (1 - g_z) \odot h_{t-1} + g_z \odot \bar h_t`.

    :math:`g_z = 0` keeps the old state; :math:`g_z = 1` takes the candidate.

    Parameters
    ----------
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    h_bar : array_like, shape (N, H)
        Candidate state :math:`\bar h_t`.
    g_z : array_like, shape (N, H)
        The notes' update gate.

    Returns
    -------
    ndarray, shape (N, H)
        :math:`h_t`.
    """
    h_prev, h_bar, g_z = same_shapes(h_prev=h_prev, h_bar=h_bar, g_z=g_z)
    return _new_state(h_prev, h_bar, g_z)


def _new_state(h_prev, h_bar, g_z):
    return (1.0 - g_z) * h_prev + g_z * h_bar


def new_state_keras(h_prev, h_bar, z) -> np.ndarray:
    r"""New state in Keras's convention: :math:`h_t = z \odot h_{t-1} + (1 - z) \odot \bar h_t`.

    :math:`z = 1` keeps the old state; :math:`z = 0` takes the candidate. :math:`z = 1 - g_z`.

    Parameters
    ----------
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    h_bar : array_like, shape (N, H)
        Candidate state :math:`\bar h_t`.
    z : array_like, shape (N, H)
        Keras's update gate, :math:`1 - g_z`.

    Returns
    -------
    ndarray, shape (N, H)
        :math:`h_t`.
    """
    h_prev, h_bar, z = same_shapes(h_prev=h_prev, h_bar=h_bar, z=z)
    return _new_state_keras(h_prev, h_bar, z)


def _new_state_keras(h_prev, h_bar, z):
    return z * h_prev + (1.0 - z) * h_bar


@dataclass(frozen=True, kw_only=True)
class GRUParams(GateParams):
    """Per-gate weights of a GRU, and the two conventions they are meant for.

    ``W_x?`` (D, H), ``W_h?`` (H, H), ``b_?`` (H,) or ``None`` for ``? in z, r, h``;
    ``input_size`` (D), ``hidden_size`` (H) and ``use_bias`` are read off the weights.

    Attributes
    ----------
    reset_after : bool
        ``False``: :func:`candidate_state` (the notes); ``True``:
        :func:`candidate_state_reset_after` (Keras's default), with the recurrent bias ``b_hh``.
    update_convention : {"notes", "keras"}
        ``"notes"``: ``W_xz, W_hz, b_z`` compute :math:`g_z` for :func:`new_state`;
        ``"keras"``: they compute :math:`z = 1 - g_z` for :func:`new_state_keras`.
    b_hh : ndarray, shape (H,), or None
        Only with ``reset_after=True`` and biases.
    """

    W_xz: np.ndarray
    W_hz: np.ndarray
    b_z: np.ndarray | None
    W_xr: np.ndarray
    W_hr: np.ndarray
    b_r: np.ndarray | None
    W_xh: np.ndarray
    W_hh: np.ndarray
    b_h: np.ndarray | None
    reset_after: bool
    update_convention: str
    b_hh: np.ndarray | None = None

    gates = "rzh"
    state_names = ("h0",)

    def __post_init__(self):
        """Check the weights (:class:`GateParams`), the conventions and ``b_hh``."""
        super().__post_init__()
        check_choice(self.update_convention, "update_convention", UPDATE_CONVENTIONS)
        if not isinstance(self.reset_after, bool):
            raise TypeError(f"reset_after must be True or False, got {self.reset_after!r}")
        b_hh = optional_float_array(self.b_hh, "b_hh", ndim=1)
        if not self.reset_after and b_hh is not None:
            raise ValueError("b_hh (recurrent candidate bias) exists only with reset_after=True")
        if self.reset_after and (b_hh is None) != (self.b_h is None):
            raise ValueError("with reset_after=True, b_hh must be given exactly when b_h is")
        if b_hh is not None:
            check_shape(b_hh, "b_hh", (self.hidden_size,), "(H,)")
        object.__setattr__(self, "b_hh", b_hh)


def convert_update_convention(
    params: GRUParams, to: str, recurrent_activation="sigmoid"
) -> GRUParams:
    r"""Return the same GRU with its update-gate weights for the other convention.

    Since :math:`1 - \sigma(a) = \sigma(-a)`, the notes' :math:`g_z` and Keras's :math:`z` have
    negated weights and bias. That identity holds for ``"sigmoid"`` and ``"hard_sigmoid"``
    only, so other gate activations are refused.

    Parameters
    ----------
    params : GRUParams
        The GRU, in either convention.
    to : {"notes", "keras"}
        The convention wanted (:data:`UPDATE_CONVENTIONS`).
    recurrent_activation : str or callable
        The gate activation the GRU runs with, ``"sigmoid"`` by default.

    Returns
    -------
    GRUParams
        ``params`` itself if it is already in convention ``to``, else a copy with
        ``W_xz``, ``W_hz`` and ``b_z`` negated.

    Raises
    ------
    ValueError
        For an unknown ``to``, or a ``recurrent_activation`` without
        :math:`f(-a) = 1 - f(a)`.
    """
    check_choice(to, "to", UPDATE_CONVENTIONS)
    if to == params.update_convention:
        return params
    if activation_name(recurrent_activation) not in _COMPLEMENT_SYMMETRIC:
        raise ValueError(
            "the update conventions are interchangeable only when f(-a) = 1 - f(a), i.e. for "
            f"recurrent_activation in {sorted(_COMPLEMENT_SYMMETRIC)}; got {recurrent_activation!r}"
        )
    return dataclasses.replace(
        params,
        W_xz=-params.W_xz,
        W_hz=-params.W_hz,
        b_z=None if params.b_z is None else -params.b_z,
        update_convention=to,
    )


def gru_step(
    x_t, h_prev, params: GRUParams, *, activation="tanh", recurrent_activation="sigmoid"
) -> np.ndarray:
    r"""One GRU step built from the gates, in the conventions ``params`` names; (N, H).

    Parameters
    ----------
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    params : GRUParams
        The three gates' weights and the conventions they are meant for.
    activation : str or callable
        For :math:`\bar h_t` (``"tanh"``).
    recurrent_activation : str or callable
        For the gates (``"sigmoid"``).

    Returns
    -------
    ndarray, shape (N, H)
        :math:`h_t`, the new state and the step's output.
    """
    x_t, h_prev = check_step_inputs(x_t, h_prev)
    check_params(params, GRUParams, x_t.shape[1], h_prev.shape[1])
    act, rec_act = get_activation(activation), get_activation(recurrent_activation)
    h_t, _, _ = _cell(input_projections(x_t, params, params.gates), [h_prev], params, act, rec_act)
    return h_t


def gru(
    x,
    params: GRUParams,
    *,
    activation="tanh",
    recurrent_activation="sigmoid",
    return_sequences: bool = False,
    return_state: bool = False,
    go_backwards: bool = False,
    initial_state=None,
):
    r"""Run :func:`gru_step` over a sequence, as ``keras.layers.GRU`` does.

    Parameters
    ----------
    x : array_like, shape (N, T, D)
        The input sequence.
    params : GRUParams
        Its ``reset_after`` and ``update_convention`` say which GRU this is.
    activation, recurrent_activation : str or callable
        As for :func:`gru_step` (``"tanh"``, ``"sigmoid"``).
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
        GRUParams,
        (activation, recurrent_activation),
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        initial_state=initial_state,
    )


def _cell(projections_t, states, p: GRUParams, act, rec_act):
    # The one forward step of gru_step, gru and their backward pass: each gate's unchecked
    # kernel, the one that the public gate function calls after its checks, on x_t W_x? + b_?
    # computed before (in the order of GRUParams.gates). The cache is what the backward reads:
    # the candidate's recurrent term (u = h_prev W_hh + b_hh after the reset, q = g_r * h_prev
    # before it).
    x_r, x_z, x_h = projections_t
    (h_prev,) = states
    g_r = gate_from_projection(x_r, h_prev, p.W_hr, rec_act)
    cache = {"h_prev": h_prev, "g_r": g_r}
    if p.reset_after:
        cache["u"] = _recurrent_term(h_prev, p.W_hh, p.b_hh)
        h_bar = act(x_h + g_r * cache["u"])
    else:
        cache["q"] = g_r * h_prev
        h_bar = gate_from_projection(x_h, cache["q"], p.W_hh, act)
    update = gate_from_projection(x_z, h_prev, p.W_hz, rec_act)  # g_z or z, as p says
    new_state_from = _new_state if p.update_convention == "notes" else _new_state_keras
    h_t = new_state_from(h_prev, h_bar, update)
    return h_t, [h_t], cache | {"h_bar": h_bar, "update": update}
