r"""What every backward pass shares: activation derivatives, one gate's VJP, upstream checks.

A gate is :math:`g = f(a)` with :math:`a = x_t W_x + h_{t-1} W_h + b`. Given the upstream
gradient :math:`\partial L / \partial g` (N, H), its vector–Jacobian product is

.. math::

    \frac{\partial L}{\partial a} = \frac{\partial L}{\partial g} \odot f'(a), \quad
    \frac{\partial L}{\partial x_t} = \frac{\partial L}{\partial a} W_x^\top, \quad
    \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial a} W_h^\top, \\
    \frac{\partial L}{\partial W_x} = x_t^\top \frac{\partial L}{\partial a}, \quad
    \frac{\partial L}{\partial W_h} = h_{t-1}^\top \frac{\partial L}{\partial a}, \quad
    \frac{\partial L}{\partial b} = \sum_n \Big(\frac{\partial L}{\partial a}\Big)_n.

:math:`f'(a)` is written in terms of the output :math:`g = f(a)` (e.g. :math:`1 - g^2` for
tanh), which is what the forward pass keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ._checks import as_float_array, check_shape
from ._gate import check_gate_weights, check_step_inputs
from .activations import activation_name, get_activation

# f'(a) as a function of y = f(a), for every activation of rnn_ref.activations. At a kink
# (relu at 0, hard_sigmoid at -3 and 3) the value is TensorFlow's: the derivative of the side
# where the function is flat.
_DERIVATIVES_FROM_OUTPUT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": lambda y: y * (1.0 - y),
    "hard_sigmoid": lambda y: np.where((y > 0.0) & (y < 1.0), 1.0 / 6.0, 0.0),
    "tanh": lambda y: 1.0 - y * y,
    "relu": lambda y: (y > 0.0).astype(np.float64),
    "linear": np.ones_like,
    "softsign": lambda y: (1.0 - np.abs(y)) ** 2,
    "elu": lambda y: np.where(y > 0.0, 1.0, y + 1.0),
}


def derivative_from_output(activation) -> Callable[[np.ndarray], np.ndarray]:
    """The derivative :math:`f'(a)` of ``activation`` as a function of its output ``f(a)``.

    Raises
    ------
    ValueError
        For an unknown name (as :func:`rnn_ref.activations.get_activation` does), or for a
        callable that is not one of :mod:`rnn_ref.activations`, whose derivative is unknown.
    """
    get_activation(activation)  # the forward's errors for bad names and types
    name = activation_name(activation)
    if name is None:
        raise ValueError(
            f"the backward pass needs the derivative of the activation, known only for "
            f"{sorted(_DERIVATIVES_FROM_OUTPUT)}; got the callable {activation!r}"
        )
    return _DERIVATIVES_FROM_OUTPUT[name]


class GateGrads(NamedTuple):
    r"""Gradients of a loss with respect to one gate's inputs and weights.

    ``dx_t`` (N, D), ``dh_prev`` (N, H), ``dW_x`` (D, H), ``dW_h`` (H, H), and ``db`` (H,) or
    ``None`` for a gate without bias.
    """

    dx_t: np.ndarray
    dh_prev: np.ndarray
    dW_x: np.ndarray
    dW_h: np.ndarray
    db: np.ndarray | None


# Public as rnn_ref.GateGrads, where the API reference documents it (this module is private).
GateGrads.__module__ = "rnn_ref"


def upstream(value, name: str, shape: tuple[int, ...], dims: str) -> np.ndarray:
    """Convert an upstream gradient and check its shape; ``None`` is a zero gradient."""
    if value is None:
        return np.zeros(shape)
    value = as_float_array(value, name, ndim=len(shape))
    check_shape(value, name, shape, dims)
    return value


def affine_backward(da, x_t, h_prev, W_x, W_h, has_bias: bool) -> GateGrads:
    r"""The VJP of :math:`a = x_t W_x + h_{t-1} W_h + b` given :math:`\partial L/\partial a`."""
    return GateGrads(
        dx_t=da @ W_x.T,
        dh_prev=da @ W_h.T,
        dW_x=x_t.T @ da,
        dW_h=h_prev.T @ da,
        db=da.sum(axis=0) if has_bias else None,
    )


def gate_backward(
    d_gate, x_t, h_prev, W_x, W_h, b, activation, names: tuple[str, str, str], d_name: str
) -> GateGrads:
    """Check one gate's arguments, recompute it and return its VJP (see the module docstring)."""
    x_t, h_prev = check_step_inputs(x_t, h_prev)
    W_x, W_h, b = check_gate_weights(W_x, W_h, b, names, x_t.shape[1], h_prev.shape[1])
    d_gate = upstream(d_gate, d_name, h_prev.shape, "(N, H)")
    derivative = derivative_from_output(activation)
    a = x_t @ W_x + h_prev @ W_h
    g = get_activation(activation)(a if b is None else a + b)
    return affine_backward(d_gate * derivative(g), x_t, h_prev, W_x, W_h, b is not None)


class Cell:
    """A cell's step with what its backward pass needs, for the step and sequence VJPs.

    ``forward`` is the cell module's own forward step (``forward_step``, the one its layer
    runs): it maps the step's input projections ``x_t W_x? + b_?`` (one per gate, in the order
    of ``params.gates``) and states to ``(output, states, cache)``. ``backward`` maps a cache
    and the gradients on the new states to ``(d_pre, d_rec, d_states_prev)``: ``d_pre`` and
    ``d_rec`` map each gate's letter to the gradient on its input side ``x_t W_x? + b_?`` and
    on its recurrent product ``r_? W_h?``, whose left factor ``r_?`` is
    ``recurrent_inputs(cache)[?]``. Only the params' ``gates`` orders the gates.
    """

    forward_step: Callable
    separate_recurrent_grads: tuple[str, ...] = ()
    """The gates (by letter) whose ``d_rec`` differs from their ``d_pre``."""

    def __init__(self, params, activation, recurrent_activation=None):
        self.params = params
        self.gates = params.gates
        self.state_names = params.state_names
        self.activations = [get_activation(activation)]
        self.act = self.activations[0]
        self.act_prime = derivative_from_output(activation)
        if recurrent_activation is not None:
            self.activations.append(get_activation(recurrent_activation))
            self.rec_prime = derivative_from_output(recurrent_activation)

    def forward(self, projections_t, states):
        return self.forward_step(projections_t, states, self.params, *self.activations)

    def backward(self, cache, d_states):  # pragma: no cover - interface
        raise NotImplementedError

    def recurrent_inputs(self, cache) -> dict[str, np.ndarray]:
        """The left factor of each gate's recurrent product: :math:`h_{t-1}` by default."""
        return dict.fromkeys(self.gates, cache["h_prev"])

    def extra_grads(self, d_rec: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Gradients of parameters outside the ``W_x?, W_h?, b_?`` pattern (GRU's ``b_hh``)."""
        return {}


def param_grads(cell: Cell, inputs, d_pre, recurrent_inputs, d_rec) -> dict:
    r"""Sum each weight's gradient over rows (batch, and time for a sequence).

    ``inputs`` (M, D) are the rows :math:`x_t`; ``d_pre``, ``recurrent_inputs`` and ``d_rec``
    map each gate's letter to (M, H) rows. Returns the keyword arguments of a params object of
    the cell's type whose every field is the gradient of the field of that name.
    """
    grads = {}
    for g in cell.gates:
        grads[f"W_x{g}"] = inputs.T @ d_pre[g]
        grads[f"W_h{g}"] = recurrent_inputs[g].T @ d_rec[g]
        grads[f"b_{g}"] = None if getattr(cell.params, f"b_{g}") is None else d_pre[g].sum(axis=0)
    grads.update(cell.extra_grads(d_rec))
    return grads


def input_grad(cell: Cell, d_pre) -> np.ndarray:
    r""":math:`\partial L/\partial x = \sum_g (\partial L/\partial a_g) W_{xg}^\top`."""
    first, *rest = cell.gates
    dx = d_pre[first] @ getattr(cell.params, f"W_x{first}").T
    for g in rest:
        dx += d_pre[g] @ getattr(cell.params, f"W_x{g}").T
    return dx


def rows(array: np.ndarray) -> np.ndarray:
    """(..., K) as (M, K): the rows over which weight gradients are summed."""
    return array.reshape(-1, array.shape[-1])
