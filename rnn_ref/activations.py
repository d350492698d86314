"""Activation functions that Keras allows for its recurrent layers, in float64 NumPy.

Each matches ``keras.activations.<name>``; ``get_activation`` resolves the names that the
layers accept (``activation=`` and ``recurrent_activation=``) to these functions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    r"""Logistic function :math:`\sigma(a) = 1 / (1 + e^{-a})`, to full relative precision.

    Computed as :math:`1 / (1 + e^{-a})` for :math:`a \ge 0` and as
    :math:`e^{a} / (1 + e^{a})` for :math:`a < 0`, so the exponential is never above 1: it
    never overflows (``np.exp(-a)`` warns on stderr for ``a < -709``), and for negative ``a``
    the small result is not the difference of numbers near 1 (the form
    :math:`\tfrac12 (1 + \tanh(a/2))` loses everything below about ``1e-16`` and is exactly 0
    from ``a`` near -37 on). Each value is within a few units in the last place of the true
    :math:`\sigma(a)`: it is 0 only where :math:`\sigma(a)` is below the smallest float64
    (``a < -745``), and exactly 1 only where :math:`1 - \sigma(a)` is below :math:`2^{-53}`,
    the spacing of float64 just below 1 (``a > 36.7``).

    Parameters
    ----------
    a : array_like
        Pre-activation, any shape.

    Returns
    -------
    ndarray
        :math:`\sigma(a)`, float64, of the shape of ``a``, in [0, 1].
    """
    a = np.asarray(a, dtype=np.float64)
    # In [0, 1]: e^{-a} for a >= 0, e^{a} for a < 0. Its underflow to 0 (|a| > 745) is the
    # correctly rounded value, not an error, even where the caller raises on underflow.
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(a))
    # [()] gives a scalar for a scalar, as the other activations (NumPy ufuncs) do.
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))[()]


def hard_sigmoid(a: np.ndarray) -> np.ndarray:
    r"""Keras 3's piecewise-linear sigmoid :math:`\mathrm{clip}((a + 3) / 6, 0, 1)`.

    Parameters
    ----------
    a : array_like
        Pre-activation, any shape.

    Returns
    -------
    ndarray
        Float64, of the shape of ``a``, in [0, 1].
    """
    return np.clip((np.asarray(a, dtype=np.float64) + 3.0) / 6.0, 0.0, 1.0)


def tanh(a: np.ndarray) -> np.ndarray:
    r"""Hyperbolic tangent :math:`\tanh(a)`.

    Parameters
    ----------
    a : array_like
        Pre-activation, any shape.

    Returns
    -------
    ndarray
        Float64, of the shape of ``a``, in (-1, 1).
    """
    return np.tanh(np.asarray(a, dtype=np.float64))


def relu(a: np.ndarray) -> np.ndarray:
    r"""Rectified linear unit :math:`\max(a, 0)`.

    Parameters
    ----------
    a : array_like
        Pre-activation, any shape.

    Returns
    -------
    ndarray
        Float64, of the shape of ``a``.
    """
    return np.maximum(np.asarray(a, dtype=np.float64), 0.0)


def linear(a: np.ndarray) -> np.ndarray:
    r"""Identity :math:`a` (Keras's ``"linear"``, also selected by ``None``).

    Parameters
    ----------
    a : array_like
        Pre-activation, any shape.

    Returns
    -------
    ndarray
        ``a`` as float64.
    """
    return np.asarray(a, dtype=np.float64)


def softsign(a: np.ndarray) -> np.ndarray:
    r"""Softsign :math:`a / (1 + |a|)`.

    Parameters
    ----------
    a : array_like
        Pre-activation, any shape.

    Returns
    -------
    ndarray
        Float64, of the shape of ``a``, in (-1, 1).
    """
    a = np.asarray(a, dtype=np.float64)
    return a / (1.0 + np.abs(a))


def elu(a: np.ndarray) -> np.ndarray:
    r"""Exponential linear unit: :math:`a` for :math:`a > 0`, else :math:`e^{a} - 1`.

    Parameters
    ----------
    a : array_like
        Pre-activation, any shape.

    Returns
    -------
    ndarray
        Float64, of the shape of ``a``, above -1.
    """
    a = np.asarray(a, dtype=np.float64)
    return np.where(a > 0, a, np.expm1(np.minimum(a, 0.0)))


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "tanh": tanh,
    "relu": relu,
    "linear": linear,
    "softsign": softsign,
    "elu": elu,
}
"""The activation names the layers accept (``activation=``, ``recurrent_activation=``).

:meta hide-value:
"""


def get_activation(activation: str | Callable | None) -> Callable[[np.ndarray], np.ndarray]:
    """Resolve an activation given by name (as Keras spells it), ``None`` or a callable.

    Parameters
    ----------
    activation : str, callable or None
        A name of :data:`ACTIVATIONS`, ``None`` (Keras's ``"linear"``), or any function of an
        array, which is returned as it is.

    Returns
    -------
    callable
        The activation, a function from an array to an array of the same shape.

    Raises
    ------
    ValueError
        For a name that is not one of :data:`ACTIVATIONS`.
    TypeError
        For anything that is neither a string, ``None`` nor callable.
    """
    if activation is None:
        return linear
    if callable(activation):
        return activation
    if isinstance(activation, str):
        try:
            return ACTIVATIONS[activation]
        except KeyError:
            raise ValueError(
                f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}, "
                "None or a callable"
            ) from None
    raise TypeError(
        f"activation must be a name, None or a callable, got {type(activation).__name__}"
    )


def activation_name(activation: str | Callable | None) -> str | None:
    """Return the Keras name of ``activation`` if it is one of ours, else ``None``.

    Parameters
    ----------
    activation : str, callable or None
        As for :func:`get_activation`.

    Returns
    -------
    str or None
        The key of :data:`ACTIVATIONS` that ``activation`` is or names (``"linear"`` for
        ``None``); ``None`` for an unknown name or a function of somebody else's.
    """
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return activation if activation in ACTIVATIONS else None
    for name, function in ACTIVATIONS.items():
        if function is activation:
            return name
    return None
