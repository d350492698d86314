"""Helpers for tests that compare rnn_ref with live Keras layers.

TensorFlow is imported lazily (and quietly) by the fixture ``keras`` in conftest.py, so that
tests which do not need it stay fast.
"""

from __future__ import annotations

import numpy as np

from rnn_ref.keras_weights import KERAS_FLOAT32_TOLERANCE


def randomize_weights(layer, rng: np.random.Generator, scale: float = 0.6) -> None:
    """Give every weight of a built Keras layer a seeded random value (never a constant)."""
    layer.set_weights([rng.normal(scale=scale, size=w.shape) for w in layer.get_weights()])


def as_list(outputs) -> list[np.ndarray]:
    """Keras returns a tensor or a list/tuple of tensors; make it a list of NumPy arrays."""
    if isinstance(outputs, list | tuple):
        return [np.asarray(o) for o in outputs]
    return [np.asarray(outputs)]


def assert_outputs_close(expected, actual) -> None:
    expected, actual = as_list(expected), as_list(actual)
    assert len(expected) == len(actual), f"{len(expected)} outputs from Keras, {len(actual)} here"
    for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
        assert e.shape == a.shape, f"output {index}: Keras shape {e.shape}, rnn_ref {a.shape}"
        np.testing.assert_allclose(a, e, **KERAS_FLOAT32_TOLERANCE, err_msg=f"output {index}")


def random_sizes(rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random (N, T, D, H) with H != D, small enough to keep a case well under a second."""
    n, t, d = (int(v) for v in rng.integers(1, [5, 9, 7]))
    h = int(rng.choice([v for v in range(1, 8) if v != d]))
    return n, t, d, h
