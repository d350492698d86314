r"""The backward pass of the LSTM: one vector–Jacobian product per equation and of the step.

The equations are those of :mod:`rnn_ref.lstm`. Each gate :math:`g = \sigma(a)`,
:math:`a = x_t W_x + h_{t-1} W_h + b`, has the VJP every gate has, with a
:class:`rnn_ref.GateGrads` as its result (:math:`\partial L/\partial a = \partial L/\partial g
\odot g \odot (1 - g)` for the sigmoid). The elementwise equations give, with
:math:`s_t = \tanh(c_t)`,

.. math::

    h_t = g_o \odot \tanh(c_t): \quad
    & \frac{\partial L}{\partial g_o} = \frac{\partial L}{\partial h_t} \odot \tanh(c_t), \quad
      \frac{\partial L}{\partial c_t} \mathrel{+}= \frac{\partial L}{\partial h_t} \odot g_o
      \odot (1 - \tanh^2(c_t)) \\
    c_t = g_f \odot c_{t-1} + g_i \odot \bar c_t: \quad
    & \frac{\partial L}{\partial c_{t-1}} = \frac{\partial L}{\partial c_t} \odot g_f, \quad
      \frac{\partial L}{\partial g_f} = \frac{\partial L}{\partial c_t} \odot c_{t-1}, \quad
      \frac{\partial L}{\partial g_i} = \frac{\partial L}{\partial c_t} \odot \bar c_t, \quad
      \frac{\partial L}{\partial \bar c_t} = \frac{\partial L}{\partial c_t} \odot g_i

and the step sums the four gates' contributions to :math:`\partial L/\partial x_t` and
:math:`\partial L/\partial h_{t-1}`. Shapes as in :mod:`rnn_ref.lstm`.
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
from ._checks import as_float_array, check_shape
from ._gate import check_params, check_step_inputs, input_projections, same_shapes
from .activations import get_activation
from .lstm import LSTMParams, _cell


def forget_gate_backward(
    dg_f, x_t, h_prev, W_xf, W_hf, b_f=None, activation="sigmoid"
) -> GateGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.lstm.forget_gate`.

    .. math::

        \frac{\partial L}{\partial a} = \frac{\partial L}{\partial g_f} \odot
        g_f \odot (1 - g_f), \quad
        \frac{\partial L}{\partial x_t} = \frac{\partial L}{\partial a} W_{xf}^\top,
        \quad \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial a}
        W_{hf}^\top,

    :math:`\partial L/\partial W_{xf} = x_t^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial W_{hf} = h_{t-1}^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial b_f = \sum_n (\partial L/\partial a)_n`, where
    :math:`a = x_t W_{xf} + h_{t-1} W_{hf} + b_f` and the factor
    :math:`g_f \odot (1 - g_f)` is the sigmoid's derivative (another ``activation`` uses its own).

    Parameters
    ----------
    dg_f : array_like, shape (N, H)
        :math:`\partial L/\partial g_f`, the gradient of the loss on the gate.
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    W_xf : array_like, shape (D, H)
        The gate's input weights.
    W_hf : array_like, shape (H, H)
        The gate's recurrent weights.
    b_f : array_like, shape (H,), optional
        The gate's bias; ``None`` for none.
    activation : str or callable
        The gate's activation, ``"sigmoid"`` by default.

    Returns
    -------
    GateGrads
        ``(dx_t, dh_prev, dW_x, dW_h, db)``: gradients with respect to ``x_t`` (N, D),
        ``h_prev`` (N, H), ``W_xf`` (D, H), ``W_hf`` (H, H) and ``b_f`` (H,) (``None``
        without bias).
    """
    return gate_backward(
        dg_f, x_t, h_prev, W_xf, W_hf, b_f, activation, ("W_xf", "W_hf", "b_f"), "dg_f"
    )


def input_gate_backward(dg_i, x_t, h_prev, W_xi, W_hi, b_i=None, activation="sigmoid") -> GateGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.lstm.input_gate`.

    .. math::

        \frac{\partial L}{\partial a} = \frac{\partial L}{\partial g_i} \odot
        g_i \odot (1 - g_i), \quad
        \frac{\partial L}{\partial x_t} = \frac{\partial L}{\partial a} W_{xi}^\top,
        \quad \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial a}
        W_{hi}^\top,

    :math:`\partial L/\partial W_{xi} = x_t^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial W_{hi} = h_{t-1}^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial b_i = \sum_n (\partial L/\partial a)_n`, where
    :math:`a = x_t W_{xi} + h_{t-1} W_{hi} + b_i` and the factor
    :math:`g_i \odot (1 - g_i)` is the sigmoid's derivative (another ``activation`` uses its own).

    Parameters
    ----------
    dg_i : array_like, shape (N, H)
        :math:`\partial L/\partial g_i`, the gradient of the loss on the gate.
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    W_xi : array_like, shape (D, H)
        The gate's input weights.
    W_hi : array_like, shape (H, H)
        The gate's recurrent weights.
    b_i : array_like, shape (H,), optional
        The gate's bias; ``None`` for none.
    activation : str or callable
        The gate's activation, ``"sigmoid"`` by default.

    Returns
    -------
    GateGrads
        ``(dx_t, dh_prev, dW_x, dW_h, db)``: gradients with respect to ``x_t`` (N, D),
        ``h_prev`` (N, H), ``W_xi`` (D, H), ``W_hi`` (H, H) and ``b_i`` (H,) (``None``
        without bias).
    """
    return gate_backward(
        dg_i, x_t, h_prev, W_xi, W_hi, b_i, activation, ("W_xi", "W_hi", "b_i"), "dg_i"
    )


def candidate_cell_state_backward(
    dc_bar, x_t, h_prev, W_xc, W_hc, b_c=None, activation="tanh"
) -> GateGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.lstm.candidate_cell_state`.

    .. math::

        \frac{\partial L}{\partial a} = \frac{\partial L}{\partial \bar c_t} \odot
        (1 - \bar c_t^2), \quad
        \frac{\partial L}{\partial x_t} = \frac{\partial L}{\partial a} W_{xc}^\top,
        \quad \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial a}
        W_{hc}^\top,

    :math:`\partial L/\partial W_{xc} = x_t^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial W_{hc} = h_{t-1}^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial b_c = \sum_n (\partial L/\partial a)_n`, where
    :math:`a = x_t W_{xc} + h_{t-1} W_{hc} + b_c` and the factor
    :math:`(1 - \bar c_t^2)` is tanh's derivative (another ``activation`` uses its own).

    Parameters
    ----------
    dc_bar : array_like, shape (N, H)
        :math:`\partial L/\partial \bar c_t`, the gradient of the loss on the gate.
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    W_xc : array_like, shape (D, H)
        The gate's input weights.
    W_hc : array_like, shape (H, H)
        The gate's recurrent weights.
    b_c : array_like, shape (H,), optional
        The gate's bias; ``None`` for none.
    activation : str or callable
        The gate's activation, ``"tanh"`` by default.

    Returns
    -------
    GateGrads
        ``(dx_t, dh_prev, dW_x, dW_h, db)``: gradients with respect to ``x_t`` (N, D),
        ``h_prev`` (N, H), ``W_xc`` (D, H), ``W_hc`` (H, H) and ``b_c`` (H,) (``None``
        without bias).
    """
    return gate_backward(
        dc_bar, x_t, h_prev, W_xc, W_hc, b_c, activation, ("W_xc", "W_hc", "b_c"), "dc_bar"
    )


def output_gate_backward(
    dg_o, x_t, h_prev, W_xo, W_ho, b_o=None, activation="sigmoid"
) -> GateGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.lstm.output_gate`.

    .. math::

        \frac{\partial L}{\partial a} = \frac{\partial L}{\partial g_o} \odot
        g_o \odot (1 - g_o), \quad
        \frac{\partial L}{\partial x_t} = \frac{\partial L}{\partial a} W_{xo}^\top,
        \quad \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial a}
        W_{ho}^\top,

    :math:`\partial L/\partial W_{xo} = x_t^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial W_{ho} = h_{t-1}^\top\, \partial L/\partial a`,
    :math:`\partial L/\partial b_o = \sum_n (\partial L/\partial a)_n`, where
    :math:`a = x_t W_{xo} + h_{t-1} W_{ho} + b_o` and the factor
    :math:`g_o \odot (1 - g_o)` is the sigmoid's derivative (another ``activation`` uses its own).

    Parameters
    ----------
    dg_o : array_like, shape (N, H)
        :math:`\partial L/\partial g_o`, the gradient of the loss on the gate.
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    W_xo : array_like, shape (D, H)
        The gate's input weights.
    W_ho : array_like, shape (H, H)
        The gate's recurrent weights.
    b_o : array_like, shape (H,), optional
        The gate's bias; ``None`` for none.
    activation : str or callable
        The gate's activation, ``"sigmoid"`` by default.

    Returns
    -------
    GateGrads
        ``(dx_t, dh_prev, dW_x, dW_h, db)``: gradients with respect to ``x_t`` (N, D),
        ``h_prev`` (N, H), ``W_xo`` (D, H), ``W_ho`` (H, H) and ``b_o`` (H,) (``None``
        without bias).
    """
    return gate_backward(
        dg_o, x_t, h_prev, W_xo, W_ho, b_o, activation, ("W_xo", "W_ho", "b_o"), "dg_o"
    )


class CellStateUpdateGrads(NamedTuple):
    """Gradients with respect to the arguments of :func:`rnn_ref.lstm.cell_state_update`."""

    dc_prev: np.ndarray
    dg_f: np.ndarray
    dg_i: np.ndarray
    dc_bar: np.ndarray


def cell_state_update_backward(dc_t, c_prev, g_f, g_i, c_bar) -> CellStateUpdateGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.lstm.cell_state_update`.

    .. math::

        \frac{\partial L}{\partial c_{t-1}} = \frac{\partial L}{\partial c_t} \odot g_f, \quad
        \frac{\partial L}{\partial g_f} = \frac{\partial L}{\partial c_t} \odot c_{t-1}, \quad
        \frac{\partial L}{\partial g_i} = \frac{\partial L}{\partial c_t} \odot \bar c_t, \quad
        \frac{\partial L}{\partial \bar c_t} = \frac{\partial L}{\partial c_t} \odot g_i

    Parameters
    ----------
    dc_t : array_like, shape (N, H)
        :math:`\partial L/\partial c_t`, the gradient of the loss on the new cell state.
    c_prev : array_like, shape (N, H)
        :math:`c_{t-1}`.
    g_f : array_like, shape (N, H)
        Forget gate.
    g_i : array_like, shape (N, H)
        Input gate.
    c_bar : array_like, shape (N, H)
        Candidate cell state :math:`\bar c_t`.

    Returns
    -------
    CellStateUpdateGrads
        ``(dc_prev, dg_f, dg_i, dc_bar)``, each (N, H).
    """
    c_prev, g_f, g_i, c_bar, dc_t = same_shapes(
        c_prev=c_prev, g_f=g_f, g_i=g_i, c_bar=c_bar, dc_t=dc_t
    )
    return CellStateUpdateGrads(*_cell_state_update_vjp(dc_t, c_prev, g_f, g_i, c_bar))


def _cell_state_update_vjp(dc_t, c_prev, g_f, g_i, c_bar):
    r"""``(dc_prev, dg_f, dg_i, dc_bar)`` of :math:`c_t = g_f c_{t-1} + g_i \bar c_t`."""
    return dc_t * g_f, dc_t * c_prev, dc_t * c_bar, dc_t * g_i


class HiddenOutputGrads(NamedTuple):
    """Gradients with respect to the arguments of :func:`rnn_ref.lstm.hidden_output`."""

    dg_o: np.ndarray
    dc_t: np.ndarray


def hidden_output_backward(dh_t, g_o, c_t, activation="tanh") -> HiddenOutputGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.lstm.hidden_output`.

    .. math::

        \frac{\partial L}{\partial g_o} = \frac{\partial L}{\partial h_t} \odot \tanh(c_t),
        \quad \frac{\partial L}{\partial c_t} = \frac{\partial L}{\partial h_t} \odot g_o
        \odot (1 - \tanh^2(c_t))

    (with another ``activation`` :math:`\phi`: :math:`\phi(c_t)` and :math:`\phi'(c_t)`).

    Parameters
    ----------
    dh_t : array_like, shape (N, H)
        :math:`\partial L/\partial h_t`.
    g_o : array_like, shape (N, H)
        Output gate.
    c_t : array_like, shape (N, H)
        New cell state.
    activation : str or callable
        ``"tanh"`` by default.

    Returns
    -------
    HiddenOutputGrads
        ``(dg_o, dc_t)``, each (N, H): ``dc_t`` is only the part that flows through
        :math:`h_t`.
    """
    g_o, c_t, dh_t = same_shapes(g_o=g_o, c_t=c_t, dh_t=dh_t)
    derivative = derivative_from_output(activation)
    s_t = get_activation(activation)(c_t)
    return HiddenOutputGrads(*_hidden_output_vjp(dh_t, g_o, s_t, derivative))


def _hidden_output_vjp(dh_t, g_o, s_t, derivative):
    r"""``(dg_o, dc_t)`` of :math:`h_t = g_o s_t`, :math:`s_t = \phi(c_t)`, given :math:`\phi'`."""
    return dh_t * s_t, dh_t * g_o * derivative(s_t)


class LSTMStepGrads(NamedTuple):
    """Gradients of a loss with respect to the inputs and weights of one LSTM step.

    ``dx_t`` (N, D), ``dh_prev`` and ``dc_prev`` (N, H), and ``params``: an
    :class:`rnn_ref.lstm.LSTMParams` whose every field is the gradient with respect to that
    weight (``None`` biases for a step without bias).
    """

    dx_t: np.ndarray
    dh_prev: np.ndarray
    dc_prev: np.ndarray
    params: LSTMParams


def lstm_step_backward(
    dh_t,
    dc_t,
    x_t,
    h_prev,
    c_prev,
    params: LSTMParams,
    *,
    activation="tanh",
    recurrent_activation="sigmoid",
) -> LSTMStepGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.lstm.lstm_step`.

    The total gradient on the new cell state is the given one plus the part through
    :math:`h_t`, :math:`\delta c_t = \partial L/\partial c_t + \partial L/\partial h_t \odot
    g_o \odot (1 - \tanh^2 c_t)`. Then

    .. math::

        \frac{\partial L}{\partial a_o} &= \frac{\partial L}{\partial h_t} \odot \tanh(c_t)
            \odot g_o (1 - g_o), &
        \frac{\partial L}{\partial a_f} &= \delta c_t \odot c_{t-1} \odot g_f (1 - g_f), \\
        \frac{\partial L}{\partial a_i} &= \delta c_t \odot \bar c_t \odot g_i (1 - g_i), &
        \frac{\partial L}{\partial a_c} &= \delta c_t \odot g_i \odot (1 - \bar c_t^2),

    :math:`\partial L/\partial c_{t-1} = \delta c_t \odot g_f`,
    :math:`\partial L/\partial x_t = \sum_k (\partial L/\partial a_k) W_{xk}^\top`,
    :math:`\partial L/\partial h_{t-1} = \sum_k (\partial L/\partial a_k) W_{hk}^\top`,
    :math:`\partial L/\partial W_{xk} = x_t^\top\, \partial L/\partial a_k`,
    :math:`\partial L/\partial W_{hk} = h_{t-1}^\top\, \partial L/\partial a_k` and
    :math:`\partial L/\partial b_k = \sum_n (\partial L/\partial a_k)_n` for
    :math:`k \in \{f, i, c, o\}`.

    Parameters
    ----------
    dh_t : array_like, shape (N, H)
        :math:`\partial L/\partial h_t`; ``None`` for zero.
    dc_t : array_like, shape (N, H)
        :math:`\partial L/\partial c_t` from outside the step (the next step, or a loss on the
        final cell state), not counting the path through :math:`h_t`; ``None`` for zero.
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        :math:`h_{t-1}`.
    c_prev : array_like, shape (N, H)
        :math:`c_{t-1}`.
    params : LSTMParams
        The step's weights.
    activation : str or callable
        For :math:`\bar c_t` and :math:`h_t` (``"tanh"``).
    recurrent_activation : str or callable
        For the three gates (``"sigmoid"``).

    Returns
    -------
    LSTMStepGrads
        ``(dx_t, dh_prev, dc_prev, params)``, ``params`` holding the weights' gradients.
    """
    x_t, h_prev = check_step_inputs(x_t, h_prev)
    c_prev = as_float_array(c_prev, "c_prev", ndim=2)
    check_shape(c_prev, "c_prev", h_prev.shape, "(N, H)")
    check_params(params, LSTMParams, x_t.shape[1], h_prev.shape[1])
    dh_t = upstream(dh_t, "dh_t", h_prev.shape, "(N, H)")
    dc_t = upstream(dc_t, "dc_t", h_prev.shape, "(N, H)")
    cell = LSTMCell(params, activation, recurrent_activation)
    _, _, cache = cell.forward(input_projections(x_t, params, cell.gates), [h_prev, c_prev])
    d_pre, d_rec, (dh_prev, dc_prev) = cell.backward(cache, [dh_t, dc_t])
    grads = param_grads(cell, x_t, d_pre, cell.recurrent_inputs(cache), d_rec)
    return LSTMStepGrads(input_grad(cell, d_pre), dh_prev, dc_prev, LSTMParams(**grads))


class LSTMCell(Cell):
    """The LSTM step for :mod:`rnn_ref.bptt`: the forward of :mod:`rnn_ref.lstm`, its VJP."""

    forward_step = staticmethod(_cell)

    def backward(self, cache, d_states):
        """``(d_pre, d_rec, [dh_prev, dc_prev])`` from the step's cache and ``[dh_t, dc_t]``.

        ``d_pre`` and ``d_rec`` are the same mapping: each gate's letter to its gradient on
        its pre-activation :math:`a_?`.
        """
        p = self.params
        dh_t, dc_t = d_states
        g_f, g_i, g_o, c_bar = (cache[k] for k in ("g_f", "g_i", "g_o", "c_bar"))
        dg_o, dc_through_h = _hidden_output_vjp(dh_t, g_o, cache["s_t"], self.act_prime)
        dc_prev, dg_f, dg_i, dc_bar = _cell_state_update_vjp(
            dc_t + dc_through_h, cache["c_prev"], g_f, g_i, c_bar
        )
        da_f = dg_f * self.rec_prime(g_f)
        da_i = dg_i * self.rec_prime(g_i)
        da_c = dc_bar * self.act_prime(c_bar)
        da_o = dg_o * self.rec_prime(g_o)
        dh_prev = da_f @ p.W_hf.T + da_i @ p.W_hi.T + da_c @ p.W_hc.T + da_o @ p.W_ho.T
        d_pre = {"f": da_f, "i": da_i, "c": da_c, "o": da_o}
        return d_pre, d_pre, [dh_prev, dc_prev]
