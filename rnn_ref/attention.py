r"""Additive (Bahdanau) attention, with Keras's masking.

A decoder state (the query) :math:`q_i` looks at every encoder output (key :math:`k_j`, value
:math:`v_j`) and takes their weighted mean:

.. math::

    e_{ij} = \tanh(q_i W_q + k_j W_k)\, w_v, \qquad
    \alpha_{ij} = \frac{m_j \exp(e_{ij})}{\sum_{l} m_l \exp(e_{il})}, \qquad
    c_i = \sum_j \alpha_{ij} v_j,

where :math:`m_j \in \{0, 1\}` is the key mask (padding has :math:`m_j = 0` and weight 0). A
query mask sets :math:`c_i = 0` at masked queries. ``keras.layers.AdditiveAttention`` computes
the same with :math:`W_q = W_k = I` and :math:`w_v` its ``scale`` (``use_scale=True``):
Bahdanau's projections are ``Dense(A, use_bias=False)`` layers applied before it.

Shapes: N batch, T_q queries (decoder steps), T_v keys and values (encoder steps), D_q, D_k,
D_v their features, A attention units; ``query`` (N, T_q, D_q), ``keys`` (N, T_v, D_k),
``values`` (N, T_v, D_v), ``W_q`` (D_q, A), ``W_k`` (D_k, A), ``w_v`` (A,).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import as_float_array, check_shape


class Attention(NamedTuple):
    r"""The result of :func:`additive_attention`.

    ``context`` (N, T_q, D_v) is :math:`c_i` for every query; ``weights`` (N, T_q, T_v) is
    :math:`\alpha_{ij}`, each row summing to 1 over the unmasked keys.
    """

    context: np.ndarray
    weights: np.ndarray


def check_mask(mask, name: str, shape: tuple[int, int], dims: str) -> np.ndarray | None:
    """A mask of booleans (or 0/1) of ``shape`` as a bool array; ``None`` passes through."""
    if mask is None:
        return None
    array = as_float_array(mask, name, ndim=2)
    check_shape(array, name, shape, dims)
    if not np.all((array == 0.0) | (array == 1.0)):
        raise ValueError(
            f"{name} must hold booleans (or 0 and 1), got the values {np.unique(array)}"
        )
    return array == 1.0


def check_attention_inputs(query, keys, values, W_q, W_k, w_v, key_mask, query_mask):
    """Convert and check every argument of :func:`additive_attention`, naming a bad one."""
    query = as_float_array(query, "query", ndim=3)
    keys = as_float_array(keys, "keys", ndim=3)
    values = as_float_array(values, "values", ndim=3)
    (n, t_q, d_q), (_, t_v, d_k) = query.shape, keys.shape
    if keys.shape[0] != n or values.shape[0] != n:
        raise ValueError(
            f"query, keys and values must have the same batch size N, got query {query.shape}, "
            f"keys {keys.shape} and values {values.shape}"
        )
    if values.shape[1] != t_v:
        raise ValueError(
            f"keys and values must have the same number of steps T_v, got keys {keys.shape} "
            f"and values {values.shape}"
        )
    W_q = as_float_array(W_q, "W_q", ndim=2)
    a = W_q.shape[1]
    check_shape(W_q, "W_q", (d_q, a), "(D_q, A)")
    W_k = as_float_array(W_k, "W_k", ndim=2)
    check_shape(W_k, "W_k", (d_k, a), "(D_k, A)")
    w_v = as_float_array(w_v, "w_v", ndim=1)
    check_shape(w_v, "w_v", (a,), "(A,)")
    key_mask = check_mask(key_mask, "key_mask", (n, t_v), "(N, T_v)")
    if key_mask is not None and not key_mask.any(axis=1).all():
        empty = np.flatnonzero(~key_mask.any(axis=1)).tolist()
        raise ValueError(
            f"key_mask must leave at least one key of every sequence, got none in rows {empty}"
        )
    query_mask = check_mask(query_mask, "query_mask", (n, t_q), "(N, T_q)")
    return query, keys, values, W_q, W_k, w_v, key_mask, query_mask


def _features(query, keys, W_q, W_k) -> np.ndarray:
    r""":math:`u_{ij} = \tanh(q_i W_q + k_j W_k)`, shape (N, T_q, T_v, A)."""
    return np.tanh((query @ W_q)[:, :, None, :] + (keys @ W_k)[:, None, :, :])


def _softmax(scores: np.ndarray, key_mask: np.ndarray | None) -> np.ndarray:
    if key_mask is not None:
        scores = np.where(key_mask[:, None, :], scores, -np.inf)
    # Shift-invariant; the shift keeps exp from overflowing. A masked key's exp(-inf) is 0.
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def attention_scores(query, keys, W_q, W_k, w_v) -> np.ndarray:
    r"""The additive scores :math:`e_{ij} = \tanh(q_i W_q + k_j W_k)\, w_v`.

    Parameters
    ----------
    query : array_like, shape (N, T_q, D_q)
        The queries :math:`q_i` (a decoder's states).
    keys : array_like, shape (N, T_v, D_k)
        The keys :math:`k_j` (an encoder's outputs).
    W_q : array_like, shape (D_q, A)
        The query projection.
    W_k : array_like, shape (D_k, A)
        The key projection.
    w_v : array_like, shape (A,)
        The score vector (Keras's ``scale``).

    Returns
    -------
    ndarray, shape (N, T_q, T_v)
    """
    query, keys, _, W_q, W_k, w_v, _, _ = check_attention_inputs(
        query, keys, keys, W_q, W_k, w_v, None, None
    )
    return _features(query, keys, W_q, W_k) @ w_v


def attention_weights(scores, key_mask=None) -> np.ndarray:
    r"""The softmax of the scores over the unmasked keys, :math:`\alpha_{ij}`.

    .. math:: \alpha_{ij} = \frac{m_j \exp(e_{ij})}{\sum_l m_l \exp(e_{il})}

    Parameters
    ----------
    scores : array_like, shape (N, T_q, T_v)
        :math:`e_{ij}`.
    key_mask : array_like of bool, shape (N, T_v), optional
        :math:`m_j`: ``False`` (or 0) at padding; every row needs at least one ``True``.

    Returns
    -------
    ndarray, shape (N, T_q, T_v)
        Each row sums to 1; masked keys have weight exactly 0.
    """
    scores = as_float_array(scores, "scores", ndim=3)
    n, _, t_v = scores.shape
    key_mask = check_mask(key_mask, "key_mask", (n, t_v), "(N, T_v)")
    if key_mask is not None and not key_mask.any(axis=1).all():
        raise ValueError("key_mask must leave at least one key of every sequence")
    return _softmax(scores, key_mask)


def additive_attention(
    query, keys, values, W_q, W_k, w_v, *, key_mask=None, query_mask=None
) -> Attention:
    r"""Additive attention: every query's weighted mean of the values.

    .. math::

        e_{ij} = \tanh(q_i W_q + k_j W_k)\, w_v, \quad
        \alpha_{ij} = \operatorname{softmax}_j(e_{ij}) \text{ over unmasked } j, \quad
        c_i = \sum_j \alpha_{ij} v_j

    As ``keras.layers.AdditiveAttention()([query @ W_q, values, keys @ W_k],
    mask=[query_mask, key_mask], return_attention_scores=True)`` with ``scale = w_v``: at a
    masked query the context is 0 and the weights are left as computed.

    Parameters
    ----------
    query : array_like, shape (N, T_q, D_q)
        The queries :math:`q_i`.
    keys : array_like, shape (N, T_v, D_k)
        The keys :math:`k_j`.
    values : array_like, shape (N, T_v, D_v)
        The values :math:`v_j` (often the keys themselves).
    W_q : array_like, shape (D_q, A)
        The query projection.
    W_k : array_like, shape (D_k, A)
        The key projection.
    w_v : array_like, shape (A,)
        The score vector.
    key_mask : array_like of bool, shape (N, T_v), optional
        ``False`` at padded keys, which get weight 0; at least one ``True`` per row.
    query_mask : array_like of bool, shape (N, T_q), optional
        ``False`` at padded queries, whose context is 0.

    Returns
    -------
    Attention
        ``(context, weights)``: (N, T_q, D_v) and (N, T_q, T_v).

    Raises
    ------
    ValueError
        If a shape disagrees (the message names the argument and the shape received), a mask
        holds other values than booleans, or a key mask leaves a sequence with no key.
    """
    query, keys, values, W_q, W_k, w_v, key_mask, query_mask = check_attention_inputs(
        query, keys, values, W_q, W_k, w_v, key_mask, query_mask
    )
    weights = _softmax(_features(query, keys, W_q, W_k) @ w_v, key_mask)
    context = weights @ values
    if query_mask is not None:
        context = np.where(query_mask[:, :, None], context, 0.0)
    return Attention(context, weights)
