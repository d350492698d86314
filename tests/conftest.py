"""Shared fixtures and paths. TensorFlow is imported only by tests that ask for ``keras``.

Test modules and their helper modules take ``ROOT`` from here (``from conftest import ROOT``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import rnn_ref

# The checkout the tests run from, wherever it was cloned.
ROOT = Path(__file__).resolve().parent.parent

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


def random_params(
    kind: str,
    rng: np.random.Generator,
    d: int,
    h: int,
    *,
    use_bias: bool = True,
    reset_after: bool = False,
    convention: str = "notes",
    scales: tuple[float, float] = (0.7, 0.5),
):
    """Random rnn_ref parameters of a ``"simple_rnn"``, ``"lstm"`` or ``"gru"`` layer.

    Weights are normal with standard deviation ``scales[0]``, biases ``scales[1]``.
    """
    gates = {"simple_rnn": "h", "lstm": "ifco", "gru": "zrh"}[kind]
    weight_scale, bias_scale = scales
    weights = {}
    for g in gates:
        weights[f"W_x{g}"] = rng.normal(scale=weight_scale, size=(d, h))
        weights[f"W_h{g}"] = rng.normal(scale=weight_scale, size=(h, h))
        weights[f"b_{g}"] = rng.normal(scale=bias_scale, size=h) if use_bias else None
    if kind == "simple_rnn":
        return rnn_ref.SimpleRNNParams(**weights)
    if kind == "lstm":
        return rnn_ref.LSTMParams(**weights)
    b_hh = rng.normal(scale=bias_scale, size=h) if reset_after and use_bias else None
    return rnn_ref.GRUParams(
        reset_after=reset_after, update_convention=convention, b_hh=b_hh, **weights
    )
