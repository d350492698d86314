r"""The backward pass of additive attention.

The vector–Jacobian product of :func:`rnn_ref.attention.additive_attention`'s context.

With :math:`u_{ij} = \tanh(q_i W_q + k_j W_k)`, :math:`e_{ij} = u_{ij} w_v`,
:math:`\alpha_{ij} = \operatorname{softmax}_j(e_{ij})` and :math:`c_i = \sum_j \alpha_{ij} v_j`,
a loss whose gradient on the context is :math:`\partial L/\partial c_i` (zero at masked
queries, whose context is the constant 0) has

.. math::

    \frac{\partial L}{\partial v_j} &= \sum_i \alpha_{ij} \frac{\partial L}{\partial c_i},
    \qquad
    \frac{\partial L}{\partial \alpha_{ij}} = \frac{\partial L}{\partial c_i} v_j^\top, \\
    \frac{\partial L}{\partial e_{ij}} &= \alpha_{ij} \Big(\frac{\partial L}{\partial
        \alpha_{ij}} - \sum_l \alpha_{il} \frac{\partial L}{\partial \alpha_{il}}\Big)
    \qquad \text{(the softmax's Jacobian; 0 at masked keys, where } \alpha_{ij} = 0), \\
    \frac{\partial L}{\partial a_{ij}} &= \frac{\partial L}{\partial e_{ij}}\, w_v \odot
        (1 - u_{ij}^2), \qquad
    \frac{\partial L}{\partial w_v} = \sum_{n, i, j} \frac{\partial L}{\partial e_{ij}}
        u_{ij}, \\
    \frac{\partial L}{\partial q_i} &= \Big(\sum_j \frac{\partial L}{\partial a_{ij}}\Big)
        W_q^\top, \qquad
    \frac{\partial L}{\partial k_j} = \Big(\sum_i \frac{\partial L}{\partial a_{ij}}\Big)
        W_k^\top,

and :math:`\partial L/\partial W_q = \sum_{n, i} q_i^\top \sum_j \partial L/\partial a_{ij}`,
:math:`\partial L/\partial W_k = \sum_{n, j} k_j^\top \sum_i \partial L/\partial a_{ij}`.
Shapes as in :mod:`rnn_ref.attention`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._backward import upstream
from .attention import _features, _softmax, check_attention_inputs


class AttentionGrads(NamedTuple):
    """Gradients of a loss with respect to every input of additive attention.

    The inputs are those of :func:`~rnn_ref.attention.additive_attention`.

    ``d_query`` (N, T_q, D_q), ``d_keys`` (N, T_v, D_k), ``d_values`` (N, T_v, D_v),
    ``dW_q`` (D_q, A), ``dW_k`` (D_k, A), ``dw_v`` (A,).
    """

    d_query: np.ndarray
    d_keys: np.ndarray
    d_values: np.ndarray
    dW_q: np.ndarray
    dW_k: np.ndarray
    dw_v: np.ndarray


def additive_attention_backward(
    d_context, query, keys, values, W_q, W_k, w_v, *, key_mask=None, query_mask=None
) -> AttentionGrads:
    r"""Vector–Jacobian product of :func:`rnn_ref.attention.additive_attention`'s context.

    The equations are in the module's docstring: the gradient flows back through the weighted
    mean to the values and the weights, through the softmax to the scores, and through
    :math:`\tanh` to the projections of the queries and keys.

    Parameters
    ----------
    d_context : array_like, shape (N, T_q, D_v)
        :math:`\partial L/\partial c`, the gradient of the loss on the context.
    query, keys, values, W_q, W_k, w_v, key_mask, query_mask
        As in :func:`rnn_ref.attention.additive_attention`.

    Returns
    -------
    AttentionGrads
        ``(d_query, d_keys, d_values, dW_q, dW_k, dw_v)``, each of its argument's shape.

    Raises
    ------
    ValueError
        For the arguments :func:`~rnn_ref.attention.additive_attention` refuses, and if
        ``d_context`` is not (N, T_q, D_v).
    """
    query, keys, values, W_q, W_k, w_v, key_mask, query_mask = check_attention_inputs(
        query, keys, values, W_q, W_k, w_v, key_mask, query_mask
    )
    (n, t_q, _), d_v = query.shape, values.shape[2]
    d_context = upstream(d_context, "d_context", (n, t_q, d_v), "(N, T_q, D_v)")
    if query_mask is not None:
        # A masked query's context is the constant 0: nothing flows back from it.
        d_context = np.where(query_mask[:, :, None], d_context, 0.0)
    u = _features(query, keys, W_q, W_k)  # (N, T_q, T_v, A)
    weights = _softmax(u @ w_v, key_mask)
    d_values = weights.transpose(0, 2, 1) @ d_context
    d_weights = d_context @ values.transpose(0, 2, 1)
    d_scores = weights * (d_weights - (weights * d_weights).sum(axis=-1, keepdims=True))
    dw_v = np.einsum("nij,nija->a", d_scores, u)
    d_pre = d_scores[..., None] * w_v * (1.0 - u * u)  # (N, T_q, T_v, A)
    d_query_proj, d_keys_proj = d_pre.sum(axis=2), d_pre.sum(axis=1)
    return AttentionGrads(
        d_query=d_query_proj @ W_q.T,
        d_keys=d_keys_proj @ W_k.T,
        d_values=d_values,
        dW_q=np.einsum("niq,nia->qa", query, d_query_proj),
        dW_k=np.einsum("njk,nja->ka", keys, d_keys_proj),
        dw_v=dw_v,
    )
