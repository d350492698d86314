"""Layer specifications: a layer's weights and its Keras options, callable on a sequence.

``LSTM(params=p, return_sequences=True)(x)`` is ``lstm(x, p, return_sequences=True)``. The specs
exist so that a layer can be handed around whole: to :func:`stack`, to
:func:`rnn_ref.bidirectional.bidirectional`, or out of :func:`rnn_ref.keras_weights.from_keras`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .gru import GRUParams, gru
from .lstm import LSTMParams, lstm
from .simple_rnn import SimpleRNNParams, simple_rnn


@dataclass(frozen=True, kw_only=True)
class SimpleRNN:
    """``keras.layers.SimpleRNN`` with given weights; see :func:`rnn_ref.simple_rnn.simple_rnn`."""

    params: SimpleRNNParams
    activation: str | Callable | None = "tanh"
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False

    state_names = ("h0",)

    def __call__(self, x, initial_state=None):
        return simple_rnn(
            x,
            self.params,
            activation=self.activation,
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            initial_state=initial_state,
        )


@dataclass(frozen=True, kw_only=True)
class LSTM:
    """``keras.layers.LSTM`` with the given weights; see :func:`rnn_ref.lstm.lstm`."""

    params: LSTMParams
    activation: str | Callable | None = "tanh"
    recurrent_activation: str | Callable | None = "sigmoid"
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False

    state_names = ("h0", "c0")

    def __call__(self, x, initial_state=None):
        return lstm(
            x,
            self.params,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            initial_state=initial_state,
        )


@dataclass(frozen=True, kw_only=True)
class GRU:
    """``keras.layers.GRU`` with the given weights; see :func:`rnn_ref.gru.gru`."""

    params: GRUParams
    activation: str | Callable | None = "tanh"
    recurrent_activation: str | Callable | None = "sigmoid"
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False

    state_names = ("h0",)

    def __call__(self, x, initial_state=None):
        return gru(
            x,
            self.params,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            initial_state=initial_state,
        )


RecurrentLayer = SimpleRNN | LSTM | GRU


def stack(x, layers: Sequence[Callable]):
    """Run ``layers`` one after the other, as a ``keras.Sequential`` of recurrent layers does.

    Every layer but the last must return sequences (the next layer needs one input per step)
    and must not return states.

    Parameters
    ----------
    x : array_like, shape (N, T, D)
    layers : sequence of layer specs (or any callables taking a sequence)

    Returns
    -------
    The last layer's output.
    """
    if len(layers) == 0:
        raise ValueError("stack needs at least one layer, got none")
    for position, layer in enumerate(layers[:-1]):
        if not getattr(layer, "return_sequences", True) or getattr(layer, "return_state", False):
            raise ValueError(
                f"layer {position} of the stack must have return_sequences=True and "
                f"return_state=False to feed the next layer; got {layer!r}"
            )
    for layer in layers:
        x = layer(x)
    return x
