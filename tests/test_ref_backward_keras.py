"""The backward passes against ``tf.GradientTape`` on the Keras layers themselves.

Each case builds a Keras layer in float64 (``dtype="float64"``), loads seeded random weights
into it with :func:`rnn_ref.set_keras_weights`, and asks the tape for the gradients of
L = Σ cotangent ⊙ output (``output_gradients``) with respect to the input, the initial states
and every weight; rnn_ref's BPTT of the spec :func:`rnn_ref.from_keras` reads from the same
layer must give the same arrays, laid out as Keras's kernels. Both sides compute in float64,
so the tolerance is tight: ``rtol=1e-9, atol=1e-11``. Measured over these cases, the largest
absolute difference is 1.3e-15 and the largest relative one (entries above 1e-8) 7e-13; the
margin covers other BLAS orders of summation. Cases cover SimpleRNN, LSTM
and GRU (``reset_after`` True and False, parameters in Keras's and the notes' update
convention), N = 1, T = 1, H ≠ D, ``return_sequences``, ``return_state``, ``go_backwards``,
``use_bias=False``, initial states, non-default activations (whose kinks rnn_ref differentiates
as TensorFlow does), stacks, ``Bidirectional`` with every merge mode, and
:func:`rnn_ref.clipping.clip_by_global_norm` against ``tf.clip_by_global_norm``.
"""

from __future__ import annotations

import numpy as np
import pytest
from random_params import random_params

import rnn_ref
from rnn_ref import bptt, clipping

pytestmark = pytest.mark.keras

TOLERANCE = {"rtol": 1e-9, "atol": 1e-11}
LAYERS = {
    "simple_rnn": ("SimpleRNN", {}),
    "lstm": ("LSTM", {}),
    "gru_reset_after": ("GRU", {"reset_after": True}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
}
# (N, T, D, H) and the layer's options: every option appears, and N = 1, T = 1, H != D.
CASES = {
    "sequences_state": ((3, 5, 4, 2), {"return_sequences": True, "return_state": True}),
    "last_backwards_N1": ((1, 4, 3, 5), {"go_backwards": True}),
    "no_bias_T1": ((2, 1, 3, 4), {"use_bias": False, "return_sequences": True}),
    "backwards_sequences_state_no_bias": (
        (2, 4, 2, 3),
        {"go_backwards": True, "return_sequences": True, "return_state": True, "use_bias": False},
    ),
    "relu_hard_sigmoid": (
        (2, 4, 3, 2),
        {"activation": "relu", "recurrent_activation": "hard_sigmoid", "return_sequences": True},
    ),
}


@pytest.fixture(scope="module")
def tf(keras):
    import tensorflow

    return tensorflow


KIND = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}


def _params(kind: str, rng, d: int, h: int, use_bias: bool, reset_after=False, convention="keras"):
    return random_params(
        KIND[kind],
        rng,
        d,
        h,
        use_bias=use_bias,
        reset_after=reset_after,
        convention=convention,
        scales=(0.6, 0.4),
    )


def _keras_layer(keras, kind, options, x, rng, convention="keras", **wrapper):
    """A built float64 Keras layer of ``kind`` with seeded random weights, and those weights."""
    options = dict(options)
    if kind == "SimpleRNN":
        options.pop("recurrent_activation", None)
    h = options.pop("units")
    layer = getattr(keras.layers, kind)(h, dtype="float64", **options)
    layer(x)
    params = _params(
        kind,
        rng,
        x.shape[2],
        h,
        options.get("use_bias", True),
        options.get("reset_after", True),
        convention,
    )
    rnn_ref.set_keras_weights(layer, params)
    return layer, params


def _keras_layout(grads) -> list[np.ndarray]:
    """Gradients of a params object laid out as the Keras layer's weights."""
    if isinstance(grads, rnn_ref.SimpleRNNParams):
        return rnn_ref.keras_weights_from_simple_rnn_params(grads)
    if isinstance(grads, rnn_ref.LSTMParams):
        return rnn_ref.keras_weights_from_lstm_params(grads)
    weights = rnn_ref.keras_weights_from_gru_params(
        rnn_ref.convert_update_convention(grads, "keras")
    )
    if grads.reset_after and grads.use_bias:  # Keras's b_hz, b_hr enter only as b_z, b_r do
        h = grads.hidden_size
        weights[2][1, :h], weights[2][1, h : 2 * h] = weights[2][0, :h], weights[2][0, h : 2 * h]
    return weights


def _as_list(outputs) -> list:
    return list(outputs) if isinstance(outputs, list | tuple) else [outputs]


def _tape(tf, call, x, states, weights, rng):
    """Keras's outputs and the tape's gradients of Σ cotangent ⊙ outputs."""
    x = tf.constant(x)
    states = [tf.constant(s) for s in states]
    with tf.GradientTape() as tape:
        tape.watch([x, *states])
        outputs = _as_list(call(x, states))
    cotangents = [rng.normal(size=o.shape) for o in outputs]
    gradients = tape.gradient(
        outputs,
        [x, *states, *weights],
        output_gradients=[tf.constant(c) for c in cotangents],
        unconnected_gradients="zero",
    )
    return [o.numpy() for o in outputs], cotangents, [g.numpy() for g in gradients]


def _assert_close(ours, theirs, what):
    assert len(ours) == len(theirs), what
    for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert np.shape(a) == np.shape(b), f"{what} {index}: {np.shape(a)} vs {np.shape(b)}"
        np.testing.assert_allclose(a, b, **TOLERANCE, err_msg=f"{what} {index}")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("layer_kind", LAYERS)
def test_layer_bptt_matches_gradient_tape(keras, tf, rng, layer_kind, case):
    kind, base = LAYERS[layer_kind]
    (n, t, d, h), options = CASES[case]
    x = rng.normal(size=(n, t, d))
    layer, _ = _keras_layer(keras, kind, {**base, **options, "units": h}, x, rng)
    states = [rng.normal(size=(n, h)) for _ in range(2 if kind == "LSTM" else 1)]
    states = states if options.get("return_state") else []  # a given initial state, or zeros
    outputs, cotangents, gradients = _tape(
        tf, lambda x, s: layer(x, initial_state=s or None), x, states, layer.trainable_weights, rng
    )
    spec = rnn_ref.from_keras(layer)
    _assert_close(_as_list(spec(x, initial_state=states or None)), outputs, "output")
    d_output = cotangents if spec.return_state else cotangents[0]
    grads = bptt.layer_bptt(spec, d_output, x, initial_state=states or None)
    dx, d_states, d_weights = (
        gradients[0],
        gradients[1 : 1 + len(states)],
        gradients[1 + len(states) :],
    )
    _assert_close([grads.dx], [dx], "dx")
    if states:
        _assert_close(grads.d_initial_state, d_states, "initial state")
    _assert_close(_keras_layout(grads.params), d_weights, "weights")


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_notes_convention_matches_gradient_tape(keras, tf, rng, reset_after):
    """Parameters in the notes' convention (g_z = 1 − z) give the same loss gradients, their
    update weights' gradients being Keras's negated."""
    n, t, d, h = 2, 4, 3, 4
    x = rng.normal(size=(n, t, d))
    options = {"units": h, "reset_after": reset_after, "return_sequences": True}
    layer, params = _keras_layer(keras, "GRU", options, x, rng, convention="notes")
    assert params.update_convention == "notes"
    _, cotangents, gradients = _tape(tf, lambda x, s: layer(x), x, [], layer.trainable_weights, rng)
    grads = bptt.gru_bptt(cotangents[0], x, params, return_sequences=True)
    assert grads.params.update_convention == "notes"
    _assert_close([grads.dx], gradients[:1], "dx")
    _assert_close(_keras_layout(grads.params), gradients[1:], "weights")


def test_gru_step_backward_matches_gradient_tape(keras, tf, rng):
    """The step VJP against Keras's GRUCell, with a gradient on h_prev."""
    n, d, h = 3, 2, 4
    cell = keras.layers.GRUCell(h, dtype="float64")
    x_t, h_prev = rng.normal(size=(n, d)), rng.normal(size=(n, h))
    cell(x_t, [h_prev])
    params = _params("GRU", rng, d, h, True, reset_after=True)
    rnn_ref.set_keras_weights(cell, params)
    _, cotangents, gradients = _tape(
        tf, lambda x, s: cell(x, s)[0], x_t, [h_prev], cell.trainable_weights, rng
    )
    grads = rnn_ref.gru_backward.gru_step_backward(cotangents[0], x_t, h_prev, params)
    _assert_close([grads.dx_t, grads.dh_prev], gradients[:2], "inputs")
    _assert_close(_keras_layout(grads.params), gradients[2:], "weights")


def test_lstm_step_backward_matches_gradient_tape(keras, tf, rng):
    n, d, h = 1, 3, 2
    cell = keras.layers.LSTMCell(h, dtype="float64")
    x_t, h_prev, c_prev = rng.normal(size=(n, d)), rng.normal(size=(n, h)), rng.normal(size=(n, h))
    cell(x_t, [h_prev, c_prev])
    params = _params("LSTM", rng, d, h, True)
    rnn_ref.set_keras_weights(cell, params)
    _, cotangents, gradients = _tape(
        tf, lambda x, s: cell(x, s)[1], x_t, [h_prev, c_prev], cell.trainable_weights, rng
    )
    grads = rnn_ref.lstm_backward.lstm_step_backward(*cotangents, x_t, h_prev, c_prev, params)
    _assert_close([grads.dx_t, grads.dh_prev, grads.dc_prev], gradients[:3], "inputs")
    _assert_close(_keras_layout(grads.params), gradients[3:], "weights")


BIDIRECTIONAL = {
    "lstm_concat_sequences": ("LSTM", "concat", {"return_sequences": True}),
    "gru_sum_last": ("GRU", "sum", {}),
    "simple_rnn_mul_sequences": ("SimpleRNN", "mul", {"return_sequences": True}),
    "gru_before_ave_sequences": ("GRU", "ave", {"return_sequences": True, "reset_after": False}),
    "lstm_none_sequences": ("LSTM", None, {"return_sequences": True}),
    "gru_concat_state": ("GRU", "concat", {"return_state": True, "use_bias": False}),
    "lstm_none_state": ("LSTM", None, {"return_state": True}),
}


@pytest.mark.parametrize("case", BIDIRECTIONAL)
def test_bidirectional_bptt_matches_gradient_tape(keras, tf, rng, case):
    kind, merge_mode, options = BIDIRECTIONAL[case]
    n, t, d, h = 2, 4, 3, 2
    x = rng.normal(size=(n, t, d))
    inner = getattr(keras.layers, kind)(h, dtype="float64", **options)
    layer = keras.layers.Bidirectional(inner, merge_mode=merge_mode, dtype="float64")
    layer(x)
    for direction in (layer.forward_layer, layer.backward_layer):
        params = _params(
            kind, rng, d, h, options.get("use_bias", True), options.get("reset_after", True)
        )
        rnn_ref.set_keras_weights(direction, params)
    n_states = (4 if kind == "LSTM" else 2) if options.get("return_state") else 0
    states = [rng.normal(size=(n, h)) for _ in range(n_states)]
    weights = [*layer.forward_layer.trainable_weights, *layer.backward_layer.trainable_weights]
    outputs, cotangents, gradients = _tape(
        tf, lambda x, s: layer(x, initial_state=s or None), x, states, weights, rng
    )
    spec = rnn_ref.from_keras(layer)
    _assert_close(_as_list(spec(x, initial_state=states or None)), outputs, "output")
    single = merge_mode is not None and not options.get("return_state")
    grads = bptt.layer_bptt(
        spec, cotangents[0] if single else cotangents, x, initial_state=states or None
    )
    _assert_close([grads.dx], gradients[:1], "dx")
    if n_states:
        _assert_close(grads.d_initial_state, gradients[1 : 1 + n_states], "initial states")
    ours = [*_keras_layout(grads.forward), *_keras_layout(grads.backward)]
    _assert_close(ours, gradients[1 + n_states :], "weights")


def test_stack_bptt_matches_gradient_tape(keras, tf, rng):
    """A bidirectional LSTM under a GRU under a SimpleRNN, as a keras.Sequential would run."""
    n, t, d = 2, 5, 3
    x = rng.normal(size=(n, t, d))
    first = keras.layers.Bidirectional(
        keras.layers.LSTM(2, return_sequences=True, dtype="float64"), dtype="float64"
    )
    second = keras.layers.GRU(3, return_sequences=True, go_backwards=True, dtype="float64")
    third = keras.layers.SimpleRNN(2, dtype="float64")
    hidden = second(first(x))
    third(hidden)
    for layer, kind, size in [
        (first.forward_layer, "LSTM", d),
        (first.backward_layer, "LSTM", d),
        (second, "GRU", 4),
        (third, "SimpleRNN", 3),
    ]:
        rnn_ref.set_keras_weights(layer, _params(kind, rng, size, layer.units, True, True))
    layers = [first, second, third]
    weights = [w for layer in layers for w in layer.trainable_weights]
    _, cotangents, gradients = _tape(tf, lambda x, s: third(second(first(x))), x, [], weights, rng)
    specs = [rnn_ref.from_keras(layer) for layer in layers]
    grads = bptt.stack_bptt(cotangents[0], x, specs)
    ours = [
        *_keras_layout(grads.layers[0].forward),
        *_keras_layout(grads.layers[0].backward),
        *_keras_layout(grads.layers[1].params),
        *_keras_layout(grads.layers[2].params),
    ]
    _assert_close([grads.dx, *ours], gradients, "stack")


CLIP_CASES = {  # shapes (None: a None entry), clip_norm, scale of the values, use_norm
    "clipped": ([(3, 4), None, (5,)], 1.0, 3.0, None),
    "within": ([(2, 2), (3,)], 50.0, 1.0, None),
    "zeros": ([(2, 2), None], 1.0, 0.0, None),
    "infinite": ([(2,), (3,)], 1.0, np.inf, None),
    "use_norm": ([(2, 3), (4,)], 0.5, 1.0, 7.0),
}


@pytest.mark.parametrize("case", CLIP_CASES)
def test_clip_by_global_norm_matches_tensorflow(tf, rng, case):
    shapes, clip_norm, scale, use_norm = CLIP_CASES[case]
    arrays = [None if s is None else rng.normal(size=s) * scale for s in shapes]
    if scale == np.inf:
        arrays[0][0] = np.inf
        arrays[1] = rng.normal(size=shapes[1])
    expected, expected_norm = tf.clip_by_global_norm(
        [None if a is None else tf.constant(a) for a in arrays],
        clip_norm,
        use_norm=None if use_norm is None else tf.constant(use_norm, dtype="float64"),
    )
    clipped, norm = clipping.clip_by_global_norm(arrays, clip_norm, use_norm=use_norm)
    np.testing.assert_allclose(norm, expected_norm.numpy(), rtol=1e-14)
    assert len(clipped) == len(expected)
    for ours, theirs in zip(clipped, expected, strict=True):
        assert (ours is None) == (theirs is None)
        if ours is not None:
            np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-14, atol=0)
