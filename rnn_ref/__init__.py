"""rnn_ref: a NumPy reference implementation of the course's recurrent layers.

Pure functions over float64 arrays, batch first, row vectors: sequences (N, T, D), states
(N, H). One function per equation of the notes (:mod:`rnn_ref.simple_rnn`,
:mod:`rnn_ref.lstm`, :mod:`rnn_ref.gru`), layers that run a cell over a sequence with Keras's
options, :mod:`rnn_ref.bidirectional`, and :mod:`rnn_ref.keras_weights`, which converts weights
between Keras layers and the per-gate parameters. Every function is tested against Keras.
"""

from .activations import get_activation, hard_sigmoid, linear, relu, sigmoid, tanh
from .bidirectional import Bidirectional, bidirectional, merge
from .concat import concat_weights, concatenated_gate, split_weights
from .gru import (
    GRUParams,
    candidate_state,
    candidate_state_reset_after,
    convert_update_convention,
    gru,
    gru_step,
    new_state,
    new_state_keras,
    reset_gate,
    update_gate,
)
from .keras_weights import (
    from_keras,
    gru_params_from_keras,
    keras_weights_from_gru_params,
    keras_weights_from_lstm_params,
    keras_weights_from_simple_rnn_params,
    lstm_params_from_keras,
    params_from_keras,
    set_keras_weights,
    simple_rnn_params_from_keras,
)
from .layers import GRU, LSTM, SimpleRNN, stack
from .lstm import (
    LSTMParams,
    candidate_cell_state,
    cell_state_update,
    forget_gate,
    hidden_output,
    input_gate,
    lstm,
    lstm_step,
    output_gate,
)
from .simple_rnn import SimpleRNNParams, simple_rnn, simple_rnn_step

__all__ = [
    "GRU",
    "LSTM",
    "Bidirectional",
    "GRUParams",
    "LSTMParams",
    "SimpleRNN",
    "SimpleRNNParams",
    "bidirectional",
    "candidate_cell_state",
    "candidate_state",
    "candidate_state_reset_after",
    "cell_state_update",
    "concat_weights",
    "concatenated_gate",
    "convert_update_convention",
    "forget_gate",
    "from_keras",
    "get_activation",
    "gru",
    "gru_params_from_keras",
    "gru_step",
    "hard_sigmoid",
    "hidden_output",
    "input_gate",
    "keras_weights_from_gru_params",
    "keras_weights_from_lstm_params",
    "keras_weights_from_simple_rnn_params",
    "linear",
    "lstm",
    "lstm_params_from_keras",
    "lstm_step",
    "merge",
    "new_state",
    "new_state_keras",
    "output_gate",
    "params_from_keras",
    "relu",
    "reset_gate",
    "set_keras_weights",
    "sigmoid",
    "simple_rnn",
    "simple_rnn_params_from_keras",
    "simple_rnn_step",
    "split_weights",
    "stack",
    "tanh",
    "update_gate",
]

__version__ = "0.1.0"
