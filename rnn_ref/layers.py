"""Layer specifications: a layer's weights and its Keras options, callable on a sequence.

``LSTM(params=p, return_sequences=True)(x)`` is ``lstm(x, p, return_sequences=True)``. The specs
exist so that a layer can be handed around whole: to :func:`stack`, to
:func:`rnn_ref.bidirectional.bidirectional`, or out of :func:`rnn_ref.keras_weights.from_keras`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from .gru import GRUParams, gru
from .lstm import LSTMParams, lstm
from .simple_rnn import SimpleRNNParams, simple_rnn


@dataclass(frozen=True, kw_only=True)
class RecurrentLayer:
    """A recurrent layer's weights and Keras options; the base of the three layer specs.

    Calling a spec runs its sequence function (``simple_rnn``, ``lstm`` or ``gru``) with its
    params and every option; ``recurrent_activation`` exists for the gated layers only.
    """

    params: SimpleRNNParams | LSTMParams | GRUParams
    activation: str | Callable | None = "tanh"
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False

    # The sequence function a subclass's spec calls: _function(x, params, **options).
    _function: ClassVar[Callable]

    @property
    def state_names(self) -> tuple[str, ...]:
        """The names of the layer's states, in the order of ``initial_state`` (Keras's)."""
        return self.params.state_names

    def __call__(self, x, initial_state=None):
        """Run the layer over ``x``: its sequence function with its params and options.

        Parameters
        ----------
        x : array_like, shape (N, T, D)
            The input sequence.
        initial_state : list of array_like (N, H), optional
            One array per name in :attr:`state_names`; zeros by default.

        Returns
        -------
        ndarray or list of ndarray
            What ``simple_rnn``, ``lstm`` or ``gru`` returns with these options.
        """
        options = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        del options["params"]
        return self._function(x, self.params, initial_state=initial_state, **options)


@dataclass(frozen=True, kw_only=True)
class SimpleRNN(RecurrentLayer):
    """``keras.layers.SimpleRNN`` with given weights; see :func:`rnn_ref.simple_rnn.simple_rnn`."""

    params: SimpleRNNParams

    _function = staticmethod(simple_rnn)


@dataclass(frozen=True, kw_only=True)
class LSTM(RecurrentLayer):
    """``keras.layers.LSTM`` with the given weights; see :func:`rnn_ref.lstm.lstm`."""

    params: LSTMParams
    recurrent_activation: str | Callable | None = "sigmoid"

    _function = staticmethod(lstm)


@dataclass(frozen=True, kw_only=True)
class GRU(RecurrentLayer):
    """``keras.layers.GRU`` with the given weights; see :func:`rnn_ref.gru.gru`."""

    params: GRUParams
    recurrent_activation: str | Callable | None = "sigmoid"

    _function = staticmethod(gru)


def stack(x, layers: Sequence[Callable]):
    """Run ``layers`` one after the other, as a ``keras.Sequential`` of recurrent layers does.

    Every layer but the last must return sequences (the next layer needs one input per step)
    and must not return states.

    Parameters
    ----------
    x : array_like, shape (N, T, D)
        The input sequence of the first layer.
    layers : sequence of layer specs (or any callables taking a sequence)
        The layers, first to last.

    Returns
    -------
    ndarray or list of ndarray
        The last layer's output.

    Raises
    ------
    ValueError
        For no layers, or a layer before the last that does not return plain sequences.
    """
    _check_stack(layers)
    for layer in layers:
        x = layer(x)
    return x


def _check_stack(layers: Sequence) -> None:
    """Raise ValueError unless ``layers`` can be stacked.

    At least one layer, and every layer but the last returning its whole sequence and no states
    (the next layer needs one input per step).
    """
    if len(layers) == 0:
        raise ValueError("stack needs at least one layer, got none")
    for position, layer in enumerate(layers[:-1]):
        if not getattr(layer, "return_sequences", True) or getattr(layer, "return_state", False):
            raise ValueError(
                f"layer {position} of the stack must have return_sequences=True and "
                f"return_state=False to feed the next layer; got {layer!r}"
            )
