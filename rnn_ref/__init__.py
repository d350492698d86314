"""rnn_ref: a NumPy reference implementation of the course's recurrent layers.

Pure functions over float64 arrays, batch first, row vectors: sequences (N, T, D), states
(N, H). One function per equation of the notes (:mod:`rnn_ref.simple_rnn`,
:mod:`rnn_ref.lstm`, :mod:`rnn_ref.gru`, :mod:`rnn_ref.attention`), layers that run a cell
over a sequence with Keras's options, :mod:`rnn_ref.bidirectional`, and
:mod:`rnn_ref.keras_weights`, which converts weights between Keras layers and the per-gate
parameters. Every function is tested against Keras.
"""

from importlib.metadata import PackageNotFoundError, version

from .activations import (
    ACTIVATIONS,
    activation_name,
    elu,
    get_activation,
    hard_sigmoid,
    linear,
    relu,
    sigmoid,
    softsign,
    tanh,
)
from .attention import Attention, additive_attention, attention_scores, attention_weights
from .bidirectional import MERGE_MODES, Bidirectional, bidirectional, merge
from .concat import concat_weights, concatenated_gate, split_weights
from .gru import (
    UPDATE_CONVENTIONS,
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
    GRU_LAYOUT,
    GRU_RESET_AFTER_LAYOUT,
    KERAS_FLOAT32_TOLERANCE,
    LSTM_LAYOUT,
    SIMPLE_RNN_LAYOUT,
    KerasLayout,
    from_keras,
    gru_params_from_keras,
    join_keras_weights,
    keras_weights_from_gru_params,
    keras_weights_from_lstm_params,
    keras_weights_from_simple_rnn_params,
    lstm_params_from_keras,
    params_from_keras,
    reorder_gate_blocks,
    set_keras_weights,
    simple_rnn_params_from_keras,
    split_keras_weights,
)
from .layers import GRU, LSTM, RecurrentLayer, SimpleRNN, stack
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
from .sequence import run_over_time
from .simple_rnn import SimpleRNNParams, simple_rnn, simple_rnn_step

__all__ = [
    "ACTIVATIONS",
    "GRU",
    "LSTM",
    "MERGE_MODES",
    "UPDATE_CONVENTIONS",
    "Attention",
    "Bidirectional",
    "GRUParams",
    "LSTMParams",
    "RecurrentLayer",
    "SimpleRNN",
    "SimpleRNNParams",
    "activation_name",
    "additive_attention",
    "attention_scores",
    "attention_weights",
    "bidirectional",
    "candidate_cell_state",
    "candidate_state",
    "candidate_state_reset_after",
    "cell_state_update",
    "concat_weights",
    "concatenated_gate",
    "convert_update_convention",
    "elu",
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
    "run_over_time",
    "set_keras_weights",
    "sigmoid",
    "simple_rnn",
    "simple_rnn_params_from_keras",
    "simple_rnn_step",
    "softsign",
    "split_weights",
    "stack",
    "tanh",
    "update_gate",
]

# The backward passes: vector–Jacobian products of the steps and of each of their equations,
# backpropagation through time for the layers, and gradient clipping.
from ._backward import GateGrads
from .attention_backward import AttentionGrads, additive_attention_backward
from .bptt import (
    BidirectionalGrads,
    BPTTGrads,
    StackGrads,
    bidirectional_bptt,
    gru_bptt,
    layer_bptt,
    lstm_bptt,
    simple_rnn_bptt,
    stack_bptt,
)
from .clipping import clip_by_global_norm, global_norm
from .gru_backward import (
    candidate_state_backward,
    candidate_state_reset_after_backward,
    gru_step_backward,
    new_state_backward,
    new_state_keras_backward,
    reset_gate_backward,
    update_gate_backward,
)
from .lstm_backward import (
    candidate_cell_state_backward,
    cell_state_update_backward,
    forget_gate_backward,
    hidden_output_backward,
    input_gate_backward,
    lstm_step_backward,
    output_gate_backward,
)
from .simple_rnn_backward import simple_rnn_step_backward

__all__ += [
    "GRU_LAYOUT",
    "GRU_RESET_AFTER_LAYOUT",
    "KERAS_FLOAT32_TOLERANCE",
    "LSTM_LAYOUT",
    "SIMPLE_RNN_LAYOUT",
    "AttentionGrads",
    "BPTTGrads",
    "BidirectionalGrads",
    "GateGrads",
    "KerasLayout",
    "StackGrads",
    "additive_attention_backward",
    "bidirectional_bptt",
    "candidate_cell_state_backward",
    "candidate_state_backward",
    "candidate_state_reset_after_backward",
    "cell_state_update_backward",
    "clip_by_global_norm",
    "forget_gate_backward",
    "global_norm",
    "gru_bptt",
    "gru_step_backward",
    "hidden_output_backward",
    "input_gate_backward",
    "join_keras_weights",
    "layer_bptt",
    "lstm_bptt",
    "lstm_step_backward",
    "new_state_backward",
    "new_state_keras_backward",
    "output_gate_backward",
    "reorder_gate_blocks",
    "reset_gate_backward",
    "simple_rnn_bptt",
    "simple_rnn_step_backward",
    "split_keras_weights",
    "stack_bptt",
    "update_gate_backward",
]

try:
    __version__ = version("rnn-ref")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
