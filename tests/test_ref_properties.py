"""Property-based tests over shapes (hypothesis): what holds for every N, T, D, H."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import rnn_ref

sizes = st.tuples(
    st.integers(1, 4),
    st.integers(1, 6),
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(0, 2**32 - 1),
)


def _params(kind, rng, d, h):
    draw = {
        g: (rng.normal(size=(d, h)), rng.normal(size=(h, h)), rng.normal(size=h)) for g in "ifcozrh"
    }
    if kind == "lstm":
        return rnn_ref.LSTMParams(
            **{
                k: v
                for g in "ifco"
                for k, v in zip((f"W_x{g}", f"W_h{g}", f"b_{g}"), draw[g], strict=True)
            }
        )
    return rnn_ref.GRUParams(
        reset_after=False,
        update_convention="notes",
        **{
            k: v
            for g in "zrh"
            for k, v in zip((f"W_x{g}", f"W_h{g}", f"b_{g}"), draw[g], strict=True)
        },
    )


@settings(max_examples=40, deadline=None)
@given(sizes, st.booleans(), st.booleans())
def test_lstm_shapes_and_bounds(size, return_sequences, go_backwards):
    n, t, d, h, seed = size
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, t, d)) * 3
    y, h_T, c_T = rnn_ref.lstm(
        x,
        _params("lstm", rng, d, h),
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=go_backwards,
    )
    assert y.shape == ((n, t, h) if return_sequences else (n, h))
    assert h_T.shape == c_T.shape == (n, h)
    assert np.all(np.abs(y) < 1)  # h = g_o ⊙ tanh(c), both factors below 1 in size
    assert np.all(np.abs(c_T) <= t)  # |c_t| ≤ |c_{t-1}| + 1
    np.testing.assert_array_equal(y[:, -1] if return_sequences else y, h_T)


@settings(max_examples=40, deadline=None)
@given(sizes)
def test_gru_state_stays_between_old_state_and_candidate(size):
    """h_t is a convex combination of h_{t-1} and h̄_t, so |h| never exceeds max(|h0|, 1)."""
    n, t, d, h, seed = size
    rng = np.random.default_rng(seed)
    h0 = rng.uniform(-1, 1, size=(n, h))
    y = rnn_ref.gru(
        rng.normal(size=(n, t, d)),
        _params("gru", rng, d, h),
        return_sequences=True,
        initial_state=h0,
    )
    assert y.shape == (n, t, h)
    assert np.all(np.abs(y) <= 1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(sizes, st.sampled_from(["sigmoid", "tanh", "relu", "linear", "hard_sigmoid"]))
def test_concatenated_equals_split_for_any_shape(size, activation):
    n, _, d, h, seed = size
    rng = np.random.default_rng(seed)
    x_t, h_prev = rng.normal(size=(n, d)), rng.normal(size=(n, h))
    W_x, W_h, b = rng.normal(size=(d, h)), rng.normal(size=(h, h)), rng.normal(size=h)
    split = rnn_ref.forget_gate(x_t, h_prev, W_x, W_h, b, activation=activation)
    joined = rnn_ref.concatenated_gate(h_prev, x_t, rnn_ref.concat_weights(W_h, W_x), b, activation)
    np.testing.assert_allclose(joined, split, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(sizes, st.sampled_from(["concat", "sum", "mul", "ave"]))
def test_bidirectional_output_shapes(size, merge_mode):
    n, t, d, h, seed = size
    rng = np.random.default_rng(seed)
    forward = rnn_ref.LSTM(params=_params("lstm", rng, d, h), return_sequences=True)
    backward = rnn_ref.LSTM(
        params=_params("lstm", rng, d, h), return_sequences=True, go_backwards=True
    )
    y = rnn_ref.bidirectional(rng.normal(size=(n, t, d)), forward, backward, merge_mode=merge_mode)
    assert y.shape == (n, t, 2 * h if merge_mode == "concat" else h)


@settings(max_examples=30, deadline=None)
@given(sizes)
def test_float32_and_lists_give_the_float64_answer(size):
    n, _, d, h, seed = size
    rng = np.random.default_rng(seed)
    args = [
        rng.normal(size=(n, d)),
        rng.normal(size=(n, h)),
        rng.normal(size=(d, h)),
        rng.normal(size=(h, h)),
    ]
    exact = rnn_ref.output_gate(*args)
    as_lists = rnn_ref.output_gate(*(a.tolist() for a in args))
    as_float32 = rnn_ref.output_gate(*(a.astype(np.float32) for a in args))
    assert exact.dtype == as_lists.dtype == as_float32.dtype == np.float64
    np.testing.assert_array_equal(exact, as_lists)
    np.testing.assert_allclose(as_float32, exact, rtol=1e-5, atol=1e-6)
