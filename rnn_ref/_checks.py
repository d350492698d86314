"""Input conversion and shape checks shared by every public function.

Every public entry point converts its arrays with :func:`as_float_array` (so array-likes,
float32 arrays and TensorFlow tensors are accepted) and then states the shapes it expects with
:func:`check_shape`, so that a wrong argument fails with a message naming it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_float_array(value, name: str, ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a float64 NumPy array, or raise naming ``name``.

    Accepts anything ``np.asarray`` understands with a real numeric dtype: lists, NumPy arrays
    of any real dtype, and TensorFlow tensors or variables (through their ``__array__``).
    """
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    try:
        array = np.asarray(value)
    except Exception as error:  # a tensor-like whose conversion fails says why
        raise TypeError(f"{name} could not be converted to an array: {error}") from error
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.floating)
        or np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimension{'s' if ndim != 1 else ''}, got shape {array.shape}"
        )
    return array


def optional_float_array(value, name: str, ndim: int | None = None) -> np.ndarray | None:
    """Like :func:`as_float_array`, but ``None`` (an absent bias) passes through."""
    return None if value is None else as_float_array(value, name, ndim)


def check_shape(array: np.ndarray, name: str, expected: Sequence[int], dims: str) -> None:
    """Raise ``ValueError`` unless ``array.shape == expected``.

    ``dims`` names the dimensions for the message, e.g. ``"(H, H)"`` gives
    ``W_hf must have shape (H, H) = (4, 4), got (4, 3)``.
    """
    expected = tuple(int(e) for e in expected)
    if array.shape != expected:
        raise ValueError(f"{name} must have shape {dims} = {expected}, got {tuple(array.shape)}")


def check_choice(value, name: str, choices: Sequence) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
