r"""The backward pass of one simple-RNN step: its vector–Jacobian product.

The step is :func:`rnn_ref.simple_rnn.simple_rnn_step`. With
:math:`a_t = x_t W_{xh} + h_{t-1} W_{hh} + b_h` and :math:`h_t = f(a_t)`, a loss :math:`L`
whose gradient on :math:`h_t` is :math:`\partial L/\partial h_t` has

.. math::

    \frac{\partial L}{\partial a_t} &= \frac{\partial L}{\partial h_t} \odot f'(a_t)
        \qquad (= \tfrac{\partial L}{\partial h_t} \odot (1 - h_t^2) \text{ for tanh}) \\
    \frac{\partial L}{\partial x_t} &= \frac{\partial L}{\partial a_t} W_{xh}^\top, \qquad
    \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial a_t} W_{hh}^\top \\
    \frac{\partial L}{\partial W_{xh}} &= x_t^\top \frac{\partial L}{\partial a_t}, \qquad
    \frac{\partial L}{\partial W_{hh}} = h_{t-1}^\top \frac{\partial L}{\partial a_t}, \qquad
    \frac{\partial L}{\partial b_h} = \sum_n \Big(\frac{\partial L}{\partial a_t}\Big)_n

Shapes: N batch, D input, H hidden, row vectors as in the forward pass.
"""

from __future__ import annotations

from ._backward import Cell, GateGrads, gate_backward
from .simple_rnn import _cell


def simple_rnn_step_backward(
    dh_t, x_t, h_prev, W_xh, W_hh, b_h=None, activation="tanh"
) -> GateGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.simple_rnn.simple_rnn_step`.

    .. math::

        \frac{\partial L}{\partial a_t} = \frac{\partial L}{\partial h_t} \odot f'(a_t),
        \quad \frac{\partial L}{\partial x_t} = \frac{\partial L}{\partial a_t} W_{xh}^\top,
        \quad \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial a_t}
        W_{hh}^\top,

    :math:`\partial L/\partial W_{xh} = x_t^\top\, \partial L/\partial a_t`,
    :math:`\partial L/\partial W_{hh} = h_{t-1}^\top\, \partial L/\partial a_t`,
    :math:`\partial L/\partial b_h = \sum_n (\partial L/\partial a_t)_n`; for tanh
    :math:`f'(a_t) = 1 - h_t^2`.

    Parameters
    ----------
    dh_t : array_like, shape (N, H)
        :math:`\partial L/\partial h_t`, the gradient of the loss on the step's output.
    x_t : array_like, shape (N, D)
        Input at step t.
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    W_xh : array_like, shape (D, H)
        Input weights.
    W_hh : array_like, shape (H, H)
        Recurrent weights.
    b_h : array_like, shape (H,), optional
        Bias; ``None`` for a layer without bias.
    activation : str or callable
        :math:`f`, ``"tanh"`` by default; one of :mod:`rnn_ref.activations` (a derivative is
        needed).

    Returns
    -------
    GateGrads
        ``(dx_t, dh_prev, dW_x, dW_h, db)``: the gradients with respect to ``x_t`` (N, D),
        ``h_prev`` (N, H), ``W_xh`` (D, H), ``W_hh`` (H, H) and ``b_h`` (H,), ``None`` when
        ``b_h`` is ``None``.
    """
    return gate_backward(
        dh_t, x_t, h_prev, W_xh, W_hh, b_h, activation, ("W_xh", "W_hh", "b_h"), "dh_t"
    )


class SimpleRNNCell(Cell):
    """The simple RNN's step for :mod:`rnn_ref.bptt`: its forward and its VJP.

    The forward is :mod:`rnn_ref.simple_rnn`'s.
    """

    forward_step = staticmethod(_cell)

    def backward(self, cache, d_states):
        """``({"h": da}, {"h": da}, [dh_prev])`` from the step's cache and ``[dh_t]``."""
        da = d_states[0] * self.act_prime(cache["h_t"])
        d_pre = {"h": da}
        return d_pre, d_pre, [da @ self.params.W_hh.T]
