"""Shared fixtures. TensorFlow is imported only by tests that ask for ``keras``.

Only fixtures and hooks live here, the file pytest loads as a plugin; what tests import is in
plain modules beside it (``paths`` for the checkout's ``ROOT``, ``random_params`` for random
weights).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

# Before any TensorFlow import, and inherited by every kernel and subprocess the tests start (the
# suite's one place for them): TensorFlow's C++ log lines on stderr are noise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


@pytest.fixture(scope="session")
def keras():
    """The Keras 3 module, on the TensorFlow backend, imported once per test session."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras as keras_module

    return keras_module


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's id, so each case has its own reproducible draws."""
    seed = int.from_bytes(request.node.nodeid.encode(), "little") % (2**32)
    return np.random.default_rng(seed)
