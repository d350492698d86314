"""Additive attention (rnn_ref.attention, rnn_ref.attention_backward).

Against ``keras.layers.AdditiveAttention`` (seeded random weights and shapes, float32,
``rtol=1e-5, atol=1e-6``, key and query masks included), against ``tf.GradientTape`` on float64
(``rtol=1e-9``), invariants that follow from the equations, and bad input.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnn_ref
from rnn_ref.keras_weights import KERAS_FLOAT32_TOLERANCE

TAPE_TOLERANCE = {"rtol": 1e-9, "atol": 1e-11}
# (N, T_q, T_v, D_q, D_k, D_v, A): N = 1, T_q = 1, T_v = 2, A different from every D. (Keras
# warns that a softmax over one key is always 1; the invariant tests cover T_v = 1.)
SIZES = {
    "random": None,
    "N1": (1, 3, 5, 4, 2, 3, 6),
    "Tq1": (3, 1, 4, 2, 5, 2, 3),
    "Tv2": (2, 3, 2, 3, 3, 4, 1),
}


def _sizes(rng, name):
    if SIZES[name] is not None:
        return SIZES[name]
    return tuple(int(v) for v in rng.integers([1, 1, 2, 1, 1, 1, 1], [5, 6, 7, 6, 6, 6, 7]))


def _key_mask(rng, n, t_v):
    """Each row keeps a random prefix of at least one key (post-padding), one row all kept."""
    lengths = rng.integers(1, t_v + 1, size=n)
    lengths[0] = t_v
    return np.arange(t_v)[None, :] < lengths[:, None]


def _inputs(rng, sizes, masks: bool):
    n, t_q, t_v, d_q, d_k, d_v, a = sizes
    args = {
        "query": rng.normal(size=(n, t_q, d_q)),
        "keys": rng.normal(size=(n, t_v, d_k)),
        "values": rng.normal(size=(n, t_v, d_v)),
        "W_q": rng.normal(scale=0.6, size=(d_q, a)),
        "W_k": rng.normal(scale=0.6, size=(d_k, a)),
        "w_v": rng.normal(size=a),
    }
    key_mask = _key_mask(rng, n, t_v) if masks else None
    query_mask = rng.random((n, t_q)) < 0.7 if masks else None
    return args, key_mask, query_mask


def _keras_attention(keras, args, key_mask, query_mask, dtype):
    """Dense projections without bias, then Keras's layer with scale = w_v."""
    project_q = keras.layers.Dense(args["W_q"].shape[1], use_bias=False, dtype=dtype)
    project_k = keras.layers.Dense(args["W_k"].shape[1], use_bias=False, dtype=dtype)
    attention = keras.layers.AdditiveAttention(dtype=dtype)
    query, keys = args["query"].astype(dtype), args["keys"].astype(dtype)
    values = args["values"].astype(dtype)
    masks = None if key_mask is None else [query_mask, key_mask]

    def call(query, keys, values):
        return attention(
            [project_q(query), values, project_k(keys)],
            mask=masks,
            return_attention_scores=True,
        )

    call(query, keys, values)  # build
    project_q.set_weights([args["W_q"]])
    project_k.set_weights([args["W_k"]])
    attention.set_weights([args["w_v"]])
    return call, [project_q.kernel, project_k.kernel, attention.scale]


@pytest.mark.keras
@pytest.mark.parametrize("masks", [False, True], ids=["no_mask", "masks"])
@pytest.mark.parametrize("size", SIZES)
def test_additive_attention_matches_keras(keras, rng, size, masks):
    args, key_mask, query_mask = _inputs(rng, _sizes(rng, size), masks)
    call, _ = _keras_attention(keras, args, key_mask, query_mask, "float32")
    context, weights = call(args["query"], args["keys"], args["values"])
    ours = rnn_ref.additive_attention(**args, key_mask=key_mask, query_mask=query_mask)
    np.testing.assert_allclose(ours.context, context, **KERAS_FLOAT32_TOLERANCE)
    np.testing.assert_allclose(ours.weights, weights, **KERAS_FLOAT32_TOLERANCE)


@pytest.mark.keras
def test_identity_projections_are_keras_layer_alone(keras, rng):
    """W_q = W_k = I: the score is Keras's own, Σ_a scale_a tanh(q_a + k_a)."""
    n, t_q, t_v, d = 2, 3, 4, 5
    query, values = rng.normal(size=(n, t_q, d)), rng.normal(size=(n, t_v, d))
    layer = keras.layers.AdditiveAttention()
    layer([query.astype("float32"), values.astype("float32")])
    scale = rng.normal(size=d)
    layer.set_weights([scale])
    key_mask = _key_mask(rng, n, t_v)
    expected = layer([query.astype("float32"), values.astype("float32")], mask=[None, key_mask])
    ours = rnn_ref.additive_attention(
        query, values, values, np.eye(d), np.eye(d), scale, key_mask=key_mask
    )
    np.testing.assert_allclose(ours.context, expected, **KERAS_FLOAT32_TOLERANCE)


@pytest.fixture(scope="module")
def tf(keras):
    import tensorflow

    return tensorflow


@pytest.mark.keras
@pytest.mark.parametrize("masks", [False, True], ids=["no_mask", "masks"])
@pytest.mark.parametrize("size", SIZES)
def test_backward_matches_gradient_tape(keras, tf, rng, size, masks):
    args, key_mask, query_mask = _inputs(rng, _sizes(rng, size), masks)
    call, weights = _keras_attention(keras, args, key_mask, query_mask, "float64")
    inputs = [tf.constant(args[name]) for name in ("query", "keys", "values")]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        context, _ = call(*inputs)
    d_context = rng.normal(size=context.shape)
    expected = tape.gradient(context, [*inputs, *weights], output_gradients=tf.constant(d_context))
    grads = rnn_ref.additive_attention_backward(
        d_context, **args, key_mask=key_mask, query_mask=query_mask
    )
    ours = [grads.d_query, grads.d_keys, grads.d_values, grads.dW_q, grads.dW_k, grads.dw_v]
    names = ["d_query", "d_keys", "d_values", "dW_q", "dW_k", "dw_v"]
    for name, a, b in zip(names, ours, expected, strict=True):
        assert a.shape == tuple(b.shape), name
        np.testing.assert_allclose(a, b.numpy(), **TAPE_TOLERANCE, err_msg=name)


def test_backward_matches_central_differences(rng):
    """Without TensorFlow: the VJP against central differences of Σ d_context ⊙ context."""
    args, key_mask, query_mask = _inputs(rng, (2, 3, 4, 3, 2, 3, 4), masks=True)
    d_context = rng.normal(size=(2, 3, 3))
    grads = rnn_ref.additive_attention_backward(
        d_context, **args, key_mask=key_mask, query_mask=query_mask
    )

    def loss(**changed):
        out = rnn_ref.additive_attention(
            **{**args, **changed}, key_mask=key_mask, query_mask=query_mask
        )
        return float(np.sum(d_context * out.context))

    step = 1e-6
    for name, grad in zip(["query", "keys", "values", "W_q", "W_k", "w_v"], grads, strict=True):
        numeric = np.zeros_like(args[name])
        for index in np.ndindex(args[name].shape):
            plus, minus = args[name].copy(), args[name].copy()
            plus[index] += step
            minus[index] -= step
            numeric[index] = (loss(**{name: plus}) - loss(**{name: minus})) / (2 * step)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_weights_are_a_distribution_over_the_unmasked_keys(rng):
    args, key_mask, _ = _inputs(rng, (4, 3, 6, 2, 3, 2, 5), masks=True)
    weights = rnn_ref.additive_attention(**args, key_mask=key_mask).weights
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(weights[~np.broadcast_to(key_mask[:, None, :], weights.shape)] == 0.0)
    assert np.all(weights[np.broadcast_to(key_mask[:, None, :], weights.shape)] > 0.0)


def test_padding_changes_nothing(rng):
    """Keys and values appended behind a mask leave the context and the weights unchanged."""
    args, _, _ = _inputs(rng, (2, 3, 4, 2, 3, 2, 5), masks=False)
    plain = rnn_ref.additive_attention(**args)
    padded = dict(args)
    for name in ("keys", "values"):
        junk = rng.normal(scale=100.0, size=(2, 3, args[name].shape[2]))
        padded[name] = np.concatenate([args[name], junk], axis=1)
    key_mask = np.arange(7)[None, :] < np.array([[4], [4]])
    result = rnn_ref.additive_attention(**padded, key_mask=key_mask)
    np.testing.assert_allclose(result.context, plain.context, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(result.weights[:, :, :4], plain.weights, rtol=1e-12, atol=1e-14)


def test_one_key_gets_all_the_weight_and_zero_score_vector_gives_the_mean(rng):
    args, _, _ = _inputs(rng, (2, 3, 1, 2, 3, 4, 5), masks=False)
    one = rnn_ref.additive_attention(**args)
    np.testing.assert_array_equal(one.weights, 1.0)
    np.testing.assert_allclose(one.context, np.repeat(args["values"], 3, axis=1))
    args, _, _ = _inputs(rng, (2, 3, 5, 2, 3, 4, 5), masks=False)
    mean = rnn_ref.additive_attention(**{**args, "w_v": np.zeros(5)})
    np.testing.assert_allclose(mean.context, np.repeat(args["values"].mean(1, keepdims=True), 3, 1))


def test_masked_queries_have_zero_context_and_no_gradient(rng):
    args, key_mask, _ = _inputs(rng, (2, 4, 3, 2, 3, 2, 5), masks=True)
    query_mask = np.array([[True, False, True, False], [False, False, True, True]])
    out = rnn_ref.additive_attention(**args, key_mask=key_mask, query_mask=query_mask)
    assert np.all(out.context[~query_mask] == 0.0)
    grads = rnn_ref.additive_attention_backward(
        rng.normal(size=out.context.shape), **args, key_mask=key_mask, query_mask=query_mask
    )
    assert np.all(grads.d_query[~query_mask] == 0.0)


def test_scores_and_weights_compose_to_the_attention(rng):
    args, key_mask, _ = _inputs(rng, (3, 2, 4, 2, 3, 2, 5), masks=True)
    scores = rnn_ref.attention_scores(args["query"], args["keys"], args["W_q"], args["W_k"],
                                      args["w_v"])  # fmt: skip
    weights = rnn_ref.attention_weights(scores, key_mask)
    out = rnn_ref.additive_attention(**args, key_mask=key_mask)
    np.testing.assert_allclose(weights, out.weights, rtol=1e-12)
    np.testing.assert_allclose(weights @ args["values"], out.context, rtol=1e-12)


def _bad(rng, **changes):
    args, key_mask, query_mask = _inputs(rng, (2, 3, 4, 3, 2, 5, 6), masks=True)
    kwargs = {"key_mask": key_mask, "query_mask": query_mask}
    for name, value in changes.items():
        (kwargs if name.endswith("mask") else args)[name] = value
    return args, kwargs


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"query": np.zeros((2, 3))}, r"query must have 3 dimensions, got shape \(2, 3\)"),
        ({"keys": np.zeros((3, 4, 2))}, r"same batch size N, got query \(2, 3, 3\), keys \(3"),
        ({"values": np.zeros((2, 5, 5))}, r"same number of steps T_v, got keys \(2, 4, 2\)"),
        ({"W_q": np.zeros((2, 6))}, r"W_q must have shape \(D_q, A\) = \(3, 6\), got \(2, 6\)"),
        ({"W_k": np.zeros((2, 5))}, r"W_k must have shape \(D_k, A\) = \(2, 6\), got \(2, 5\)"),
        ({"w_v": np.zeros(5)}, r"w_v must have shape \(A,\) = \(6,\), got \(5,\)"),
        ({"key_mask": np.ones((2, 5))}, r"key_mask must have shape \(N, T_v\) = \(2, 4\)"),
        ({"query_mask": np.ones((2, 4))}, r"query_mask must have shape \(N, T_q\) = \(2, 3\)"),
        ({"key_mask": np.full((2, 4), 0.5)}, r"key_mask must hold booleans .* \[0.5\]"),
        (
            {"key_mask": np.array([[1, 1, 0, 0], [0, 0, 0, 0]])},
            r"at least one key of every sequence, got none in rows \[1\]",
        ),
    ],
    ids=[
        "query_rank",
        "batch",
        "steps",
        "W_q",
        "W_k",
        "w_v",
        "key_mask",
        "query_mask",
        "mask_values",
        "empty_row",
    ],
)
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
def test_bad_input_names_what_was_received(rng, changes, message, backward):
    args, kwargs = _bad(rng, **changes)
    if backward:
        args = {"d_context": np.zeros((2, 3, 5)), **args}
    function = rnn_ref.additive_attention_backward if backward else rnn_ref.additive_attention
    with pytest.raises(ValueError, match=message):
        function(**args, **kwargs)


def test_backward_checks_the_upstream_gradient(rng):
    args, kwargs = _bad(rng)
    with pytest.raises(
        ValueError, match=r"d_context must have shape \(N, T_q, D_v\) = \(2, 3, 5\)"
    ):
        rnn_ref.additive_attention_backward(np.zeros((2, 3, 4)), **args, **kwargs)


def test_attention_weights_refuses_an_empty_row(rng):
    with pytest.raises(ValueError, match="at least one key"):
        rnn_ref.attention_weights(rng.normal(size=(2, 1, 3)), [[1, 0, 0], [0, 0, 0]])
