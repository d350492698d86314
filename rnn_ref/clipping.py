r"""Gradient clipping by global norm, as ``tf.clip_by_global_norm`` does it.

BPTT through many steps can make gradients explode (products of many Jacobians
:math:`\partial h_t / \partial h_{t-1}`); clipping rescales all gradients together so that
their joint norm is at most a threshold, keeping their direction:

.. math::

    \lVert g \rVert = \sqrt{\textstyle\sum_j \lVert g_j \rVert_2^2}, \qquad
    g_j \leftarrow g_j \cdot \frac{c}{\max(\lVert g \rVert, c)}.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._checks import as_float_array


def _arrays(t_list) -> list[np.ndarray | None]:
    if isinstance(t_list, str | bytes) or not isinstance(t_list, Sequence):
        raise TypeError(f"t_list must be a sequence of arrays, got {type(t_list).__name__}")
    return [None if t is None else as_float_array(t, f"t_list[{i}]") for i, t in enumerate(t_list)]


def global_norm(t_list) -> float:
    r"""The joint Euclidean norm :math:`\sqrt{\sum_j \lVert t_j \rVert_2^2}` of some arrays.

    As ``tf.linalg.global_norm``: ``None`` entries are ignored, an empty list has norm 0.

    Parameters
    ----------
    t_list : sequence of array_like or None
        The arrays (e.g. the gradients of every weight).

    Returns
    -------
    float
    """
    return float(np.sqrt(sum(np.sum(t * t) for t in _arrays(t_list) if t is not None)))


def clip_by_global_norm(t_list, clip_norm, use_norm=None) -> tuple[list, float]:
    r"""Scale arrays together so that their global norm is at most ``clip_norm``.

    .. math::

        t_j \leftarrow t_j \cdot \frac{c}{\max(\lVert t \rVert, c)},
        \qquad \lVert t \rVert = \sqrt{\textstyle\sum_j \lVert t_j \rVert_2^2}

    The semantics of ``tf.clip_by_global_norm``, whose scale :math:`c \cdot \min(1/\lVert t
    \rVert, 1/c)` this computes the same way: arrays already within the norm, a zero global norm
    included, are unchanged (up to the rounding of :math:`c \cdot (1/c)`); ``None`` entries stay
    ``None`` and count for nothing; if the global norm is infinite or NaN, every entry becomes
    NaN (and the returned norm is that infinity or NaN). Unlike TensorFlow, a ``clip_norm`` that
    is not a positive finite number is refused.

    Parameters
    ----------
    t_list : sequence of array_like or None
        The arrays to clip, e.g. the gradients of every weight of a model.
    clip_norm : float
        The largest global norm allowed, :math:`c > 0`.
    use_norm : float, optional
        The global norm to use instead of computing it.

    Returns
    -------
    list_clipped : list of ndarray or None
        The arrays scaled, float64, in the order given.
    global_norm : float
        The global norm of ``t_list`` before clipping (or ``use_norm``).

    Raises
    ------
    TypeError
        If ``t_list`` is not a sequence, or an entry is not an array of real numbers.
    ValueError
        If ``clip_norm`` is not a positive finite number.
    """
    arrays = _arrays(t_list)
    clip_norm = float(as_float_array(clip_norm, "clip_norm", ndim=0))
    if not np.isfinite(clip_norm) or clip_norm <= 0.0:
        raise ValueError(f"clip_norm must be a positive finite number, got {clip_norm}")
    if use_norm is None:
        norm = np.sqrt(sum(np.sum(t * t) for t in arrays if t is not None))
    else:
        norm = float(as_float_array(use_norm, "use_norm", ndim=0))
    norm = np.float64(norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        # TensorFlow's formula, rounding included; (norm - norm) is NaN for an infinite norm.
        scale = clip_norm * np.minimum(1.0 / norm, 1.0 / clip_norm) + (norm - norm)
    return [None if t is None else t * scale for t in arrays], float(norm)
