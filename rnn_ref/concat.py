r"""The notes' concatenated form :math:`W[h_{t-1}, x_t]` and its split form.

The notes write every gate as :math:`\sigma(W [h_{t-1}, x_t] + b)` with column vectors: one
matrix applied to the state and the input stacked. With row vectors, as here and in Keras, the
same map is :math:`[h_{t-1}, x_t] \, W` with :math:`W` of shape (H + D, H) stacking the
recurrent weights on top of the input weights,

.. math:: [h_{t-1}, x_t] \begin{bmatrix} W_h \\ W_x \end{bmatrix} = x_t W_x + h_{t-1} W_h,

so :math:`W` here is the transpose of the notes' matrix.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_float_array, check_shape, optional_float_array
from ._gate import check_step_inputs
from .activations import get_activation


def concat_weights(W_h, W_x) -> np.ndarray:
    r"""Stack :math:`W_h` (H, H) on :math:`W_x` (D, H) into :math:`W` (H + D, H).

    ``np.concatenate([h_prev, x_t], axis=1) @ W`` then equals ``x_t @ W_x + h_prev @ W_h``.

    Parameters
    ----------
    W_h : array_like, shape (H, H)
        Recurrent weights.
    W_x : array_like, shape (D, H)
        Input weights.

    Returns
    -------
    ndarray, shape (H + D, H)
        :math:`W`, the recurrent weights on top.
    """
    W_h = as_float_array(W_h, "W_h", ndim=2)
    W_x = as_float_array(W_x, "W_x", ndim=2)
    hidden_size = W_h.shape[1]
    check_shape(W_h, "W_h", (hidden_size, hidden_size), "(H, H)")
    check_shape(W_x, "W_x", (W_x.shape[0], hidden_size), "(D, H)")
    return np.concatenate([W_h, W_x], axis=0)


def split_weights(W, hidden_size: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Split :math:`W` (H + D, H) into :math:`(W_h, W_x)`; inverse of :func:`concat_weights`.

    Parameters
    ----------
    W : array_like, shape (H + D, H)
        Stacked weights, the recurrent ones on top.
    hidden_size : int
        H, which says where the recurrent block ends.

    Returns
    -------
    W_h : ndarray, shape (H, H)
    W_x : ndarray, shape (D, H)
    """
    W = as_float_array(W, "W", ndim=2)
    if W.shape[1] != hidden_size or W.shape[0] <= hidden_size:
        raise ValueError(
            f"W must have shape (H + D, H) with H = {hidden_size} and D >= 1, got {W.shape}"
        )
    return W[:hidden_size], W[hidden_size:]


def concatenated_gate(h_prev, x_t, W, b=None, activation="sigmoid") -> np.ndarray:
    r"""Compute a gate in the notes' form, :math:`f([h_{t-1}, x_t] W + b)`, shape (N, H).

    Parameters
    ----------
    h_prev : array_like, shape (N, H)
        State :math:`h_{t-1}`.
    x_t : array_like, shape (N, D)
        Input at step t.
    W : array_like, shape (H + D, H)
        Stacked weights (:func:`concat_weights`).
    b : array_like, shape (H,), optional
        Bias; ``None`` for none.
    activation : str or callable
        :math:`f`, ``"sigmoid"`` by default.

    Returns
    -------
    ndarray, shape (N, H)
        The gate, equal to the split form ``f(x_t W_x + h_prev W_h + b)``.
    """
    x_t, h_prev = check_step_inputs(x_t, h_prev)
    hidden_size, input_size = h_prev.shape[1], x_t.shape[1]
    W = as_float_array(W, "W", ndim=2)
    check_shape(W, "W", (hidden_size + input_size, hidden_size), "(H + D, H)")
    b = optional_float_array(b, "b", ndim=1)
    z = np.concatenate([h_prev, x_t], axis=1) @ W
    if b is not None:
        check_shape(b, "b", (hidden_size,), "(H,)")
        z = z + b
    return get_activation(activation)(z)
