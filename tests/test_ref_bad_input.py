"""Bad input raises ValueError or TypeError naming what was received and what was expected."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import rnn_ref

N, D, H = 2, 3, 4


def _arrays(rng):
    return rng.normal(size=(N, D)), rng.normal(size=(N, H)), rng.normal(size=(D, H))


def _gate_args(rng):
    return [rng.normal(size=(N, D)), rng.normal(size=(N, H)), rng.normal(size=(D, H)),
            rng.normal(size=(H, H)), rng.normal(size=H)]  # fmt: skip


GATES = {
    "forget_gate": ("W_xf", "W_hf", "b_f"),
    "input_gate": ("W_xi", "W_hi", "b_i"),
    "candidate_cell_state": ("W_xc", "W_hc", "b_c"),
    "output_gate": ("W_xo", "W_ho", "b_o"),
    "reset_gate": ("W_xr", "W_hr", "b_r"),
    "update_gate": ("W_xz", "W_hz", "b_z"),
    "simple_rnn_step": ("W_xh", "W_hh", "b_h"),
}


@pytest.mark.parametrize("name", GATES)
def test_gate_wrong_rank_of_x(rng, name):
    args = _gate_args(rng)
    args[0] = args[0][0]  # (D,) instead of (N, D)
    with pytest.raises(ValueError, match=r"x_t must have 2 dimensions, got shape \(3,\)"):
        getattr(rnn_ref, name)(*args)


@pytest.mark.parametrize("name", GATES)
def test_gate_batch_mismatch(rng, name):
    args = _gate_args(rng)
    args[1] = args[1][:1]
    with pytest.raises(ValueError, match="same batch size N"):
        getattr(rnn_ref, name)(*args)


@pytest.mark.parametrize("name", GATES)
def test_gate_weight_shapes_named(rng, name):
    W_x, W_h, b = GATES[name]
    for position, weight, message in [
        (2, W_x, rf"{W_x} must have shape \(D, H\) = \(3, 4\), got \(4, 3\)"),
        (3, W_h, rf"{W_h} must have shape \(H, H\) = \(4, 4\), got \(4, 3\)"),
        (4, b, rf"{b} must have shape \(H,\) = \(4,\), got \(3,\)"),
    ]:
        args = _gate_args(rng)
        args[position] = np.zeros((4, 3)) if position < 4 else np.zeros(3)
        with pytest.raises(ValueError, match=message) as error:
            getattr(rnn_ref, name)(*args)
        assert str(error.value).startswith(f"{weight} must have shape")


@pytest.mark.parametrize("name", GATES)
def test_gate_unknown_activation(rng, name):
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        getattr(rnn_ref, name)(*_gate_args(rng), activation="swish")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "x_t must be an array, got None"),
        ([["a", "b", "c"]] * 2, "must hold real numbers"),
        (np.array([[object()] * 3] * 2), "dtype object"),
        (np.ones((2, 3), dtype=complex), "dtype complex128"),
    ],
    ids=["none", "strings", "object", "complex"],
)
def test_non_numeric_input(rng, value, message):
    args = _gate_args(rng)
    args[0] = value
    with pytest.raises(TypeError, match=message):
        rnn_ref.forget_gate(*args)


def test_activation_of_wrong_type():
    with pytest.raises(TypeError, match="activation must be a name, None or a callable, got int"):
        rnn_ref.get_activation(3)


@pytest.mark.parametrize(
    ("function", "names"),
    [
        (rnn_ref.cell_state_update, ("c_prev", "g_f", "g_i", "c_bar")),
        (rnn_ref.hidden_output, ("g_o", "c_t")),
        (rnn_ref.new_state, ("h_prev", "h_bar", "g_z")),
        (rnn_ref.new_state_keras, ("h_prev", "h_bar", "z")),
    ],
    ids=["cell_state_update", "hidden_output", "new_state", "new_state_keras"],
)
def test_elementwise_functions_check_shapes(rng, function, names):
    args = [rng.normal(size=(N, H)) for _ in names]
    args[-1] = rng.normal(size=(N, H + 1))
    with pytest.raises(ValueError, match=rf"{names[-1]} must have shape \(N, H\) like {names[0]}"):
        function(*args)


def test_candidate_state_checks_reset_gate_shape(rng):
    x_t, h_prev, W_xh = _arrays(rng)
    for function in (rnn_ref.candidate_state, rnn_ref.candidate_state_reset_after):
        with pytest.raises(ValueError, match="g_r must have shape"):
            function(x_t, h_prev, np.ones((N, H + 1)), W_xh, np.eye(H))


def test_candidate_state_reset_after_checks_recurrent_bias(rng):
    x_t, h_prev, W_xh = _arrays(rng)
    with pytest.raises(ValueError, match=r"b_hh must have shape \(H,\)"):
        rnn_ref.candidate_state_reset_after(
            x_t, h_prev, np.ones((N, H)), W_xh, np.eye(H), np.zeros(H), np.zeros(H + 2)
        )


def _lstm(rng):
    weights = {}
    for g in "ifco":
        weights |= {f"W_x{g}": rng.normal(size=(D, H)), f"W_h{g}": rng.normal(size=(H, H))}
        weights[f"b_{g}"] = rng.normal(size=H)
    return rnn_ref.LSTMParams(**weights), weights


def test_lstm_params_name_the_bad_weight(rng):
    _, weights = _lstm(rng)
    with pytest.raises(ValueError, match=r"W_ho must have shape \(H, H\)"):
        rnn_ref.LSTMParams(**(weights | {"W_ho": np.zeros((H, H + 1))}))
    with pytest.raises(ValueError, match=r"missing \['b_o'\]"):
        rnn_ref.LSTMParams(**(weights | {"b_o": None}))
    with pytest.raises(TypeError, match="W_xc"):
        rnn_ref.LSTMParams(**{k: v for k, v in weights.items() if k != "W_xc"})


def test_gru_params_name_conventions(rng):
    weights = {}
    for g in "zrh":
        weights |= {f"W_x{g}": rng.normal(size=(D, H)), f"W_h{g}": rng.normal(size=(H, H))}
        weights[f"b_{g}"] = rng.normal(size=H)
    with pytest.raises(ValueError, match=r"update_convention must be one of \['notes', 'keras'\]"):
        rnn_ref.GRUParams(reset_after=False, update_convention="pytorch", **weights)
    with pytest.raises(TypeError, match="update_convention"):
        rnn_ref.GRUParams(reset_after=False, **weights)
    with pytest.raises(ValueError, match="b_hh must be given"):
        rnn_ref.GRUParams(reset_after=True, update_convention="keras", **weights)
    with pytest.raises(ValueError, match="only with reset_after=True"):
        rnn_ref.GRUParams(reset_after=False, update_convention="keras", b_hh=np.ones(H), **weights)
    with pytest.raises(TypeError, match="reset_after must be True or False"):
        rnn_ref.GRUParams(reset_after="yes", update_convention="keras", **weights)


@pytest.mark.parametrize("layer", ["simple_rnn", "lstm", "gru"])
def test_layers_check_sequences_and_states(rng, layer):
    lstm_params, _ = _lstm(rng)
    params = {
        "simple_rnn": rnn_ref.SimpleRNNParams(
            W_xh=rng.normal(size=(D, H)), W_hh=rng.normal(size=(H, H))
        ),
        "lstm": lstm_params,
        "gru": rnn_ref.convert_update_convention(
            rnn_ref.GRUParams(
                reset_after=False,
                update_convention="keras",
                **{f"W_x{g}": rng.normal(size=(D, H)) for g in "zrh"},
                **{f"W_h{g}": rng.normal(size=(H, H)) for g in "zrh"},
                **{f"b_{g}": None for g in "zrh"},
            ),
            "notes",
        ),
    }[layer]
    run = getattr(rnn_ref, layer)
    with pytest.raises(ValueError, match=r"x must have 3 dimensions, got shape \(2, 3\)"):
        run(np.zeros((N, D)), params)
    with pytest.raises(ValueError, match="at least one time step"):
        run(np.zeros((N, 0, D)), params)
    with pytest.raises(ValueError, match=r"(x|the input) has D = 5 features"):
        run(np.zeros((N, 4, 5)), params)
    states = 2 if layer == "lstm" else 1
    with pytest.raises(ValueError, match=f"initial_state must be a list of {states} array"):
        run(np.zeros((N, 4, D)), params, initial_state=[np.zeros((N, H))] * (states + 1))
    with pytest.raises(ValueError, match=r"initial_state h0 must have shape \(N, H\)"):
        run(np.zeros((N, 4, D)), params, initial_state=[np.zeros((N + 1, H))] * states)
    with pytest.raises(TypeError, match="params must be"):
        run(np.zeros((N, 4, D)), object())


def test_bidirectional_checks(rng):
    params, _ = _lstm(rng)
    forward = rnn_ref.LSTM(params=params, return_sequences=True)
    x = rng.normal(size=(N, 5, D))
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        rnn_ref.bidirectional(x, forward, merge_mode="max")
    with pytest.raises(ValueError, match="opposite go_backwards"):
        rnn_ref.bidirectional(x, forward, forward)
    backward = dataclasses.replace(forward, go_backwards=True, return_sequences=False)
    with pytest.raises(ValueError, match="agree on return_sequences"):
        rnn_ref.bidirectional(x, forward, backward)
    with pytest.raises(ValueError, match="initial_state must be a list of 4 arrays"):
        rnn_ref.bidirectional(x, forward, initial_state=[np.zeros((N, H))] * 2)
    with pytest.raises(ValueError, match="same shape"):
        rnn_ref.merge(np.zeros((2, 3)), np.zeros((2, 4)), "sum")


def test_stack_checks(rng):
    params, _ = _lstm(rng)
    last_only = rnn_ref.LSTM(params=params)
    with pytest.raises(ValueError, match="layer 0 of the stack must have return_sequences=True"):
        rnn_ref.stack(rng.normal(size=(N, 5, D)), [last_only, last_only])
    with pytest.raises(ValueError, match="at least one layer"):
        rnn_ref.stack(rng.normal(size=(N, 5, D)), [])


def test_keras_weight_lists_checked(rng):
    with pytest.raises(ValueError, match="got 1 arrays"):
        rnn_ref.lstm_params_from_keras([np.zeros((D, 4 * H))])
    with pytest.raises(ValueError, match=r"kernel must have shape \(D, 4H\), got \(3, 6\)"):
        rnn_ref.lstm_params_from_keras([np.zeros((D, 6)), np.zeros((H, 4 * H))])
    with pytest.raises(ValueError, match=r"recurrent_kernel must have shape \(H, 4H\)"):
        rnn_ref.lstm_params_from_keras([np.zeros((D, 4 * H)), np.zeros((H, 3 * H))])
    with pytest.raises(ValueError, match=r"bias must have 2 dimensions"):
        rnn_ref.gru_params_from_keras(
            [np.zeros((D, 3 * H)), np.zeros((H, 3 * H)), np.zeros(3 * H)], reset_after=True
        )
    with pytest.raises(ValueError, match=r"bias must have shape \(3H,\)"):
        rnn_ref.gru_params_from_keras(
            [np.zeros((D, 3 * H)), np.zeros((H, 3 * H)), np.zeros(3 * H + 1)], reset_after=False
        )
    with pytest.raises(TypeError, match="reset_after must be True or False"):
        rnn_ref.gru_params_from_keras([np.zeros((D, 3 * H)), np.zeros((H, 3 * H))], reset_after=1)
    with pytest.raises(TypeError, match="params must be LSTMParams"):
        rnn_ref.keras_weights_from_lstm_params(object())


def test_concat_checks(rng):
    with pytest.raises(ValueError, match=r"W_x must have shape \(D, H\)"):
        rnn_ref.concat_weights(np.zeros((H, H)), np.zeros((D, H + 1)))
    with pytest.raises(ValueError, match=r"W must have shape \(H \+ D, H\) with H = 4"):
        rnn_ref.split_weights(np.zeros((H, H)), hidden_size=H)
    x_t, h_prev, _ = _arrays(rng)
    with pytest.raises(ValueError, match=r"W must have shape \(H \+ D, H\) = \(7, 4\)"):
        rnn_ref.concatenated_gate(h_prev, x_t, np.zeros((D + H, H + 1)))


def test_step_functions_check_states_and_params(rng):
    params, _ = _lstm(rng)
    x_t, h_prev, _ = _arrays(rng)
    with pytest.raises(ValueError, match=r"c_prev must have shape \(N, H\)"):
        rnn_ref.lstm_step(x_t, h_prev, np.zeros((N, H + 1)), params)
    with pytest.raises(ValueError, match="the state has H = 5 units but params expect H = 4"):
        rnn_ref.lstm_step(x_t, np.zeros((N, 5)), np.zeros((N, 5)), params)
    with pytest.raises(TypeError, match="params must be GRUParams, got LSTMParams"):
        rnn_ref.gru_step(x_t, h_prev, params)
    with pytest.raises(ValueError, match="to must be one of"):
        rnn_ref.convert_update_convention(
            rnn_ref.GRUParams(
                reset_after=False,
                update_convention="keras",
                **{f"W_x{g}": np.zeros((D, H)) for g in "zrh"},
                **{f"W_h{g}": np.zeros((H, H)) for g in "zrh"},
                **{f"b_{g}": None for g in "zrh"},
            ),
            "torch",
        )
    for convert in (
        rnn_ref.keras_weights_from_simple_rnn_params,
        rnn_ref.keras_weights_from_gru_params,
    ):
        with pytest.raises(TypeError, match="params must be"):
            convert(params)
