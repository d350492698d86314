r"""The backward pass of the GRU: one vector–Jacobian product per equation and of the step.

The equations are those of :mod:`rnn_ref.gru`, in both reset forms and both update
conventions. The gates :math:`g_r` and :math:`g_z` (or Keras's :math:`z`) have the VJP every
gate has, with a :class:`rnn_ref.GateGrads` as its result. The other equations give

.. math::

    \text{reset before (notes):}\quad & q = g_r \odot h_{t-1}, \;
        \bar h_t = \tanh(x_t W_{xh} + q W_{hh} + b_h): \;
        \frac{\partial L}{\partial q} = \frac{\partial L}{\partial a_h} W_{hh}^\top, \;
        \frac{\partial L}{\partial g_r} = \frac{\partial L}{\partial q} \odot h_{t-1}, \;
        \frac{\partial L}{\partial W_{hh}} = q^\top \frac{\partial L}{\partial a_h} \\
    \text{reset after (Keras):}\quad & u = h_{t-1} W_{hh} + b_{hh}, \;
        \bar h_t = \tanh(x_t W_{xh} + b_h + g_r \odot u): \;
        \frac{\partial L}{\partial u} = \frac{\partial L}{\partial a_h} \odot g_r, \;
        \frac{\partial L}{\partial g_r} = \frac{\partial L}{\partial a_h} \odot u \\
    \text{notes:}\quad & h_t = (1 - g_z) \odot h_{t-1} + g_z \odot \bar h_t: \;
        \frac{\partial L}{\partial g_z} = \frac{\partial L}{\partial h_t} \odot
        (\bar h_t - h_{t-1}) \\
    \text{Keras:}\quad & h_t = z \odot h_{t-1} + (1 - z) \odot \bar h_t: \;
        \frac{\partial L}{\partial z} = \frac{\partial L}{\partial h_t} \odot
        (h_{t-1} - \bar h_t)

with :math:`\partial L/\partial a_h = \partial L/\partial \bar h_t \odot (1 - \bar h_t^2)`.
Shapes as in :mod:`rnn_ref.gru`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._backward import (
    Cell,
    GateGrads,
    derivative_from_output,
    gate_backward,
    input_grad,
    param_grads,
    upstream,
)
from ._checks import check_shape, optional_float_array
from ._gate import (
    check_gate_weights,
    check_params,
    check_step_inputs,
    input_projections,
    same_shapes,
)
from .activations import get_activation
from .gru import GRUParams, _cell


def reset_gate_backward(dg_r, x_t, h_prev, W_xr, W_hr, b_r=None, activation="sigmoid") -> GateGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.gru.reset_gate`.

    .. math::

        \frac{\partial L}{\partial a} = \frac{\partial L}{\partial g_r} \odot g_r \odot
        (1 - g_r), \quad
        \frac{\partial L}{\partial x_t} = \frac{\partial L}{\partial a} W_{xr}^\top, \quad
        \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial a} W_{hr}^\top,

    :math:`\partial L/\partial W_{xr} = x_t^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial W_{hr} = h_{t-1}^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial b_r = \sum_n (\partial L/\partial a)_n`
    (another ``activation`` uses its own derivative).

    Parameters
    ----------
    dg_r : array_like, shape (N, H)
        :math:`\partial L/\partial g_r`.
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        :math:`h_{t-1}`.
    W_xr : array_like, shape (D, H)
        Input weights.
    W_hr : array_like, shape (H, H)
        Recurrent weights.
    b_r : array_like, shape (H,), optional
        Bias.
    activation : str or callable
        ``"sigmoid"`` by default.

    Returns
    -------
    GateGrads
        ``(dx_t, dh_prev, dW_x, dW_h, db)`` for ``x_t``, ``h_prev``, ``W_xr``, ``W_hr``,
        ``b_r`` (``None`` without bias).
    """
    return gate_backward(
        dg_r, x_t, h_prev, W_xr, W_hr, b_r, activation, ("W_xr", "W_hr", "b_r"), "dg_r"
    )


def update_gate_backward(
    dg_z, x_t, h_prev, W_xz, W_hz, b_z=None, activation="sigmoid"
) -> GateGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.gru.update_gate`.

    .. math::

        \frac{\partial L}{\partial a} = \frac{\partial L}{\partial g_z} \odot g_z \odot
        (1 - g_z), \quad
        \frac{\partial L}{\partial x_t} = \frac{\partial L}{\partial a} W_{xz}^\top, \quad
        \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial a} W_{hz}^\top,

    :math:`\partial L/\partial W_{xz} = x_t^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial W_{hz} = h_{t-1}^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial b_z = \sum_n (\partial L/\partial a)_n`. The same holds for
    Keras's :math:`z` with its weights.

    Parameters
    ----------
    dg_z : array_like, shape (N, H)
        :math:`\partial L/\partial g_z` (or :math:`\partial L/\partial z`).
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        :math:`h_{t-1}`.
    W_xz : array_like, shape (D, H)
        Input weights.
    W_hz : array_like, shape (H, H)
        Recurrent weights.
    b_z : array_like, shape (H,), optional
        Bias.
    activation : str or callable
        ``"sigmoid"`` by default.

    Returns
    -------
    GateGrads
        ``(dx_t, dh_prev, dW_x, dW_h, db)`` for ``x_t``, ``h_prev``, ``W_xz``, ``W_hz``,
        ``b_z`` (``None`` without bias).
    """
    return gate_backward(
        dg_z, x_t, h_prev, W_xz, W_hz, b_z, activation, ("W_xz", "W_hz", "b_z"), "dg_z"
    )


class CandidateStateGrads(NamedTuple):
    """Gradients with respect to the arguments of a candidate-state function.

    ``dx_t`` (N, D), ``dh_prev`` and ``dg_r`` (N, H), ``dW_x`` (D, H), ``dW_h`` (H, H), ``db``
    (H,) and ``db_hh`` (H,), each ``None`` where the forward had no such bias (``db_hh`` always
    for :func:`candidate_state_backward`).
    """

    dx_t: np.ndarray
    dh_prev: np.ndarray
    dg_r: np.ndarray
    dW_x: np.ndarray
    dW_h: np.ndarray
    db: np.ndarray | None
    db_hh: np.ndarray | None


def _candidate_inputs(dh_bar, x_t, h_prev, g_r, W_xh, W_hh, b_h):
    x_t, h_prev = check_step_inputs(x_t, h_prev)
    h_prev, g_r = same_shapes(h_prev=h_prev, g_r=g_r)
    W_xh, W_hh, b_h = check_gate_weights(
        W_xh, W_hh, b_h, ("W_xh", "W_hh", "b_h"), x_t.shape[1], h_prev.shape[1]
    )
    dh_bar = upstream(dh_bar, "dh_bar", h_prev.shape, "(N, H)")
    return dh_bar, x_t, h_prev, g_r, W_xh, W_hh, b_h


def candidate_state_backward(
    dh_bar, x_t, h_prev, g_r, W_xh, W_hh, b_h=None, activation="tanh"
) -> CandidateStateGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.gru.candidate_state` (reset before).

    With :math:`q = g_r \odot h_{t-1}` and :math:`a = x_t W_{xh} + q W_{hh} + b_h`:

    .. math::

        \frac{\partial L}{\partial a} = \frac{\partial L}{\partial \bar h_t} \odot
        (1 - \bar h_t^2), \quad
        \frac{\partial L}{\partial q} = \frac{\partial L}{\partial a} W_{hh}^\top, \quad
        \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial q} \odot g_r, \quad
        \frac{\partial L}{\partial g_r} = \frac{\partial L}{\partial q} \odot h_{t-1},

    :math:`\partial L/\partial x_t = \partial L/\partial a\, W_{xh}^\top`,
    :math:`\partial L/\partial W_{xh} = x_t^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial W_{hh} = q^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial b_h = \sum_n (\partial L/\partial a)_n`.

    Parameters
    ----------
    dh_bar : array_like, shape (N, H)
        :math:`\partial L/\partial \bar h_t`.
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        :math:`h_{t-1}`.
    g_r : array_like, shape (N, H)
        Reset gate.
    W_xh : array_like, shape (D, H)
        Input weights.
    W_hh : array_like, shape (H, H)
        Recurrent weights.
    b_h : array_like, shape (H,), optional
        Bias.
    activation : str or callable
        ``"tanh"`` by default.

    Returns
    -------
    CandidateStateGrads
        ``(dx_t, dh_prev, dg_r, dW_x, dW_h, db, db_hh)`` with ``db_hh = None``.
    """
    dh_bar, x_t, h_prev, g_r, W_xh, W_hh, b_h = _candidate_inputs(
        dh_bar, x_t, h_prev, g_r, W_xh, W_hh, b_h
    )
    derivative = derivative_from_output(activation)
    q = g_r * h_prev
    a = x_t @ W_xh + q @ W_hh
    h_bar = get_activation(activation)(a if b_h is None else a + b_h)
    da = dh_bar * derivative(h_bar)
    d_rec, dg_r, dh_prev = _candidate_vjp(da, h_prev, g_r, W_hh, None)
    return CandidateStateGrads(
        dx_t=da @ W_xh.T,
        dh_prev=dh_prev,
        dg_r=dg_r,
        dW_x=x_t.T @ da,
        dW_h=q.T @ d_rec,
        db=None if b_h is None else da.sum(axis=0),
        db_hh=None,
    )


def candidate_state_reset_after_backward(
    dh_bar, x_t, h_prev, g_r, W_xh, W_hh, b_h=None, b_hh=None, activation="tanh"
) -> CandidateStateGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.gru.candidate_state_reset_after`.

    With :math:`u = h_{t-1} W_{hh} + b_{hh}` and :math:`a = x_t W_{xh} + b_h + g_r \odot u`:

    .. math::

        \frac{\partial L}{\partial a} = \frac{\partial L}{\partial \bar h_t} \odot
        (1 - \bar h_t^2), \quad
        \frac{\partial L}{\partial u} = \frac{\partial L}{\partial a} \odot g_r, \quad
        \frac{\partial L}{\partial g_r} = \frac{\partial L}{\partial a} \odot u, \quad
        \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial u} W_{hh}^\top,

    :math:`\partial L/\partial x_t = \partial L/\partial a\, W_{xh}^\top`,
    :math:`\partial L/\partial W_{xh} = x_t^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial W_{hh} = h_{t-1}^\top\, \partial L/\partial u`,
    :math:`\partial L/\partial b_h = \sum_n (\partial L/\partial a)_n`,
    :math:`\partial L/\partial b_{hh} = \sum_n (\partial L/\partial u)_n`.

    Parameters
    ----------
    dh_bar : array_like, shape (N, H)
        :math:`\partial L/\partial \bar h_t`.
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        :math:`h_{t-1}`.
    g_r : array_like, shape (N, H)
        Reset gate.
    W_xh : array_like, shape (D, H)
        Input weights.
    W_hh : array_like, shape (H, H)
        Recurrent weights.
    b_h : array_like, shape (H,), optional
        Input-side bias.
    b_hh : array_like, shape (H,), optional
        Recurrent-side bias, inside the reset.
    activation : str or callable
        ``"tanh"`` by default.

    Returns
    -------
    CandidateStateGrads
        ``(dx_t, dh_prev, dg_r, dW_x, dW_h, db, db_hh)``.
    """
    dh_bar, x_t, h_prev, g_r, W_xh, W_hh, b_h = _candidate_inputs(
        dh_bar, x_t, h_prev, g_r, W_xh, W_hh, b_h
    )
    b_hh = optional_float_array(b_hh, "b_hh", ndim=1)
    if b_hh is not None:
        check_shape(b_hh, "b_hh", (h_prev.shape[1],), "(H,)")
    derivative = derivative_from_output(activation)
    u = h_prev @ W_hh if b_hh is None else h_prev @ W_hh + b_hh
    a = x_t @ W_xh + g_r * u
    h_bar = get_activation(activation)(a if b_h is None else a + b_h)
    da = dh_bar * derivative(h_bar)
    du, dg_r, dh_prev = _candidate_vjp(da, h_prev, g_r, W_hh, u)
    return CandidateStateGrads(
        dx_t=da @ W_xh.T,
        dh_prev=dh_prev,
        dg_r=dg_r,
        dW_x=x_t.T @ da,
        dW_h=h_prev.T @ du,
        db=None if b_h is None else da.sum(axis=0),
        db_hh=None if b_hh is None else du.sum(axis=0),
    )


def _candidate_vjp(da_h, h_prev, g_r, W_hh, u):
    r"""The VJP of the candidate's recurrent term given :math:`\partial L/\partial a_h`.

    ``u`` is the forward's :math:`h_{t-1} W_{hh} + b_{hh}` with the reset after the product,
    ``None`` with the reset before it. Returns ``(d_rec, dg_r, dh_prev)``: the gradient on the
    recurrent product's right-hand side (:math:`\partial L/\partial a_h` before the reset,
    :math:`\partial L/\partial u` after it), on :math:`g_r`, and the candidate's share of
    :math:`\partial L/\partial h_{t-1}`.
    """
    if u is None:  # a_h = x_t W_xh + (g_r * h_prev) W_hh + b_h
        dq = da_h @ W_hh.T
        return da_h, dq * h_prev, dq * g_r
    du = da_h * g_r  # a_h = x_t W_xh + b_h + g_r * u
    return du, da_h * u, du @ W_hh.T


class NewStateGrads(NamedTuple):
    """Gradients with respect to the arguments of :func:`rnn_ref.gru.new_state`."""

    dh_prev: np.ndarray
    dh_bar: np.ndarray
    dg_z: np.ndarray


class NewStateKerasGrads(NamedTuple):
    """Gradients with respect to the arguments of :func:`rnn_ref.gru.new_state_keras`."""

    dh_prev: np.ndarray
    dh_bar: np.ndarray
    dz: np.ndarray


def new_state_backward(dh_t, h_prev, h_bar, g_z) -> NewStateGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.gru.new_state` (the notes' convention).

    .. math::

        \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial h_t} \odot (1 - g_z),
        \quad \frac{\partial L}{\partial \bar h_t} = \frac{\partial L}{\partial h_t} \odot g_z,
        \quad \frac{\partial L}{\partial g_z} = \frac{\partial L}{\partial h_t} \odot
        (\bar h_t - h_{t-1})

    Parameters
    ----------
    dh_t : array_like, shape (N, H)
        :math:`\partial L/\partial h_t`.
    h_prev : array_like, shape (N, H)
        :math:`h_{t-1}`.
    h_bar : array_like, shape (N, H)
        Candidate state :math:`\bar h_t`.
    g_z : array_like, shape (N, H)
        Update gate (the notes' :math:`g_z`).

    Returns
    -------
    NewStateGrads
        ``(dh_prev, dh_bar, dg_z)``, each (N, H).
    """
    h_prev, h_bar, g_z, dh_t = same_shapes(h_prev=h_prev, h_bar=h_bar, g_z=g_z, dh_t=dh_t)
    return NewStateGrads(*_new_state_vjp(dh_t, h_prev, h_bar, g_z, "notes"))


def new_state_keras_backward(dh_t, h_prev, h_bar, z) -> NewStateKerasGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.gru.new_state_keras` (Keras's convention).

    .. math::

        \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial h_t} \odot z, \quad
        \frac{\partial L}{\partial \bar h_t} = \frac{\partial L}{\partial h_t} \odot (1 - z),
        \quad \frac{\partial L}{\partial z} = \frac{\partial L}{\partial h_t} \odot
        (h_{t-1} - \bar h_t)

    Parameters
    ----------
    dh_t : array_like, shape (N, H)
        :math:`\partial L/\partial h_t`.
    h_prev : array_like, shape (N, H)
        :math:`h_{t-1}`.
    h_bar : array_like, shape (N, H)
        Candidate state :math:`\bar h_t`.
    z : array_like, shape (N, H)
        Keras's update gate :math:`z = 1 - g_z`.

    Returns
    -------
    NewStateKerasGrads
        ``(dh_prev, dh_bar, dz)``, each (N, H).
    """
    h_prev, h_bar, z, dh_t = same_shapes(h_prev=h_prev, h_bar=h_bar, z=z, dh_t=dh_t)
    return NewStateKerasGrads(*_new_state_vjp(dh_t, h_prev, h_bar, z, "keras"))


def _new_state_vjp(dh_t, h_prev, h_bar, update, convention):
    """``(dh_prev, dh_bar, d_update)`` of the new state, ``update`` being g_z or Keras's z."""
    if convention == "notes":  # h_t = (1 - g_z) h_prev + g_z h_bar
        return dh_t * (1.0 - update), dh_t * update, dh_t * (h_bar - h_prev)
    return dh_t * update, dh_t * (1.0 - update), dh_t * (h_prev - h_bar)  # z h_prev + (1 - z) h_bar


class GRUStepGrads(NamedTuple):
    """Gradients of a loss with respect to the inputs and weights of one GRU step.

    ``dx_t`` (N, D), ``dh_prev`` (N, H), and ``params``: a :class:`rnn_ref.gru.GRUParams` of
    the same ``reset_after`` and ``update_convention`` whose every array field is the gradient
    with respect to that weight (``None`` where the step has no such bias).
    """

    dx_t: np.ndarray
    dh_prev: np.ndarray
    params: GRUParams


def gru_step_backward(
    dh_t, x_t, h_prev, params: GRUParams, *, activation="tanh", recurrent_activation="sigmoid"
) -> GRUStepGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.gru.gru_step`.

    In the reset form and update convention of ``params``.

    With the update gate's output :math:`u` (:math:`g_z`, notes, or :math:`z`, Keras):

    .. math::

        \frac{\partial L}{\partial \bar h_t} &= \frac{\partial L}{\partial h_t} \odot u
            \;\text{(notes)}, \quad \frac{\partial L}{\partial h_t} \odot (1 - u)
            \;\text{(Keras)}, \qquad
        \frac{\partial L}{\partial a_z} = \pm \frac{\partial L}{\partial h_t} \odot
            (\bar h_t - h_{t-1}) \odot u (1 - u), \\
        \frac{\partial L}{\partial a_h} &= \frac{\partial L}{\partial \bar h_t} \odot
            (1 - \bar h_t^2), \qquad
        \frac{\partial L}{\partial a_r} = \frac{\partial L}{\partial g_r} \odot g_r (1 - g_r),

    (+ for the notes, − for Keras) with :math:`\partial L/\partial g_r` from
    :func:`candidate_state_backward` or :func:`candidate_state_reset_after_backward`, and

    .. math::

        \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial h_t} \odot
        (1 - g_z \text{ or } z) + \frac{\partial L}{\partial a_z} W_{hz}^\top +
        \frac{\partial L}{\partial a_r} W_{hr}^\top + (\text{the candidate's term}),

    :math:`\partial L/\partial x_t = \sum_k (\partial L/\partial a_k) W_{xk}^\top`,
    :math:`\partial L/\partial W_{xk} = x_t^\top\, \partial L/\partial a_k`,
    :math:`\partial L/\partial b_k = \sum_n (\partial L/\partial a_k)_n` for
    :math:`k \in \{r, z, h\}`.

    Parameters
    ----------
    dh_t : array_like, shape (N, H)
        :math:`\partial L/\partial h_t`.
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        :math:`h_{t-1}`.
    params : GRUParams
        The step's weights; its ``reset_after`` and ``update_convention`` say which GRU.
    activation : str or callable
        For :math:`\bar h_t` (``"tanh"``).
    recurrent_activation : str or callable
        For the gates (``"sigmoid"``).

    Returns
    -------
    GRUStepGrads
        ``(dx_t, dh_prev, params)``, ``params`` holding the weights' gradients.
    """
    x_t, h_prev = check_step_inputs(x_t, h_prev)
    check_params(params, GRUParams, x_t.shape[1], h_prev.shape[1])
    dh_t = upstream(dh_t, "dh_t", h_prev.shape, "(N, H)")
    cell = GRUCell(params, activation, recurrent_activation)
    _, _, cache = cell.forward(input_projections(x_t, params, cell.gates), [h_prev])
    d_pre, d_rec, (dh_prev,) = cell.backward(cache, [dh_t])
    grads = param_grads(cell, x_t, d_pre, cell.recurrent_inputs(cache), d_rec)
    grads = GRUParams(
        reset_after=params.reset_after, update_convention=params.update_convention, **grads
    )
    return GRUStepGrads(input_grad(cell, d_pre), dh_prev, grads)


class GRUCell(Cell):
    """The GRU step for :mod:`rnn_ref.bptt`: the forward of :mod:`rnn_ref.gru`, its VJP."""

    forward_step = staticmethod(_cell)

    def backward(self, cache, d_states):
        r"""``(d_pre, d_rec, [dh_prev])`` from the step's cache and ``[dh_t]``, per gate letter.

        ``d_pre`` maps each gate to :math:`\partial L/\partial a_?`; ``d_rec`` is the same but
        for the candidate with the reset after the product, whose recurrent product gets
        :math:`\partial L/\partial a_h \odot g_r`.
        """
        p = self.params
        h_prev, g_r, h_bar, update = (cache[k] for k in ("h_prev", "g_r", "h_bar", "update"))
        dh_prev, dh_bar, d_update = _new_state_vjp(
            d_states[0], h_prev, h_bar, update, p.update_convention
        )
        da_z = d_update * self.rec_prime(update)
        da_h = dh_bar * self.act_prime(h_bar)
        d_rec_h, dg_r, dh_prev_h = _candidate_vjp(da_h, h_prev, g_r, p.W_hh, cache.get("u"))
        da_r = dg_r * self.rec_prime(g_r)
        dh_prev = dh_prev + dh_prev_h + da_r @ p.W_hr.T + da_z @ p.W_hz.T
        d_pre = {"r": da_r, "z": da_z, "h": da_h}
        return d_pre, d_pre | {"h": d_rec_h}, [dh_prev]

    @property
    def separate_recurrent_grads(self):
        r"""The candidate when the reset is after the product, else no gate.

        There the candidate's recurrent gradient is :math:`\partial L/\partial a_h \odot g_r`.
        """
        return ("h",) if self.params.reset_after else ()

    def recurrent_inputs(self, cache):
        r"""The left factors :math:`h_{t-1}`, and for the candidate :math:`g_r \odot h_{t-1}`.

        The candidate's is :math:`h_{t-1}` too when the reset is after the product.
        """
        h_prev = cache["h_prev"]
        return {"r": h_prev, "z": h_prev, "h": h_prev if self.params.reset_after else cache["q"]}

    def extra_grads(self, d_rec):
        """The gradient of the recurrent bias ``b_hh``, where the cell has one."""
        if self.params.b_hh is None:
            return {}
        d = d_rec["h"]  # (M, H) rows, or (T, N, H) for a sequence
        return {"b_hh": d.sum(axis=tuple(range(d.ndim - 1)))}
