r"""Keras's weight layouts, and conversion between Keras layers and per-gate parameters.

This module is the one place where Keras's layouts are written down. Keras keeps all gates of
a layer in three arrays, with the gates side by side along the last axis:

=============================  ========  ================  ===================  ============
layer (or its cell)            kernel    recurrent_kernel  bias                 gate order
=============================  ========  ================  ===================  ============
SimpleRNN                      (D, H)    (H, H)            (H,)                 --
LSTM                           (D, 4H)   (H, 4H)           (4H,)                i, f, c, o
GRU, ``reset_after=True``      (D, 3H)   (H, 3H)           (2, 3H): input row,  z, r, h
                                                           recurrent row
GRU, ``reset_after=False``     (D, 3H)   (H, 3H)           (3H,)                z, r, h
=============================  ========  ================  ===================  ============

With ``use_bias=False`` there is no bias array. Keras computes
:math:`x_t \cdot \text{kernel} + h_{t-1} \cdot \text{recurrent\_kernel} + \text{bias}` with row
vectors, so gate ``g``'s block of the kernel is :math:`W_{xg}` and of the recurrent kernel
:math:`W_{hg}`, with no transpose. The notes' :math:`W_g [h_{t-1}, x_t]` uses the transpose of
their stack (:mod:`rnn_ref.concat`).

Keras's GRU update gate is :math:`z = 1 - g_z` of the notes: parameters read from Keras have
``update_convention="keras"``; :func:`rnn_ref.gru.convert_update_convention` turns them into the
notes' form. A ``Bidirectional`` layer merges its two directions by one of
:data:`rnn_ref.bidirectional.MERGE_MODES`.

Keras computes in float32: :data:`KERAS_FLOAT32_TOLERANCE` is how close float64 results must be
to a Keras layer's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ._checks import as_float_array, check_shape
from .bidirectional import MERGE_MODES as MERGE_MODES  # Keras's merge modes, listed there
from .bidirectional import Bidirectional
from .gru import GRUParams, convert_update_convention
from .layers import GRU, LSTM, SimpleRNN
from .lstm import LSTMParams
from .simple_rnn import SimpleRNNParams

KERAS_FLOAT32_TOLERANCE = MappingProxyType({"rtol": 1e-5, "atol": 1e-6})
"""``rtol`` and ``atol`` for float64 results against a Keras layer's float32 outputs.

Both, since relative error alone blows up where outputs cross zero; they hold over 50 LSTM steps.
"""


@dataclass(frozen=True)
class KerasLayout:
    """How one kind of Keras recurrent layer stores its weights."""

    gates: tuple[str, ...]
    """Gate names in the order of their blocks along the last axis."""
    two_bias_rows: bool = False
    """Whether the bias has two rows, shape (2, kH), an input row and a recurrent row (GRU
    ``reset_after``)."""

    @property
    def block_names(self) -> tuple[str, ...]:
        """The names :func:`split_keras_weights` gives the blocks, gate after gate.

        ``W_x<g>, W_h<g>, b_<g>`` for each gate ``g``, and ``b_h<g>`` after ``b_<g>`` with two
        bias rows. Without them, these are the leading fields of the layer's parameters.
        """
        rows = ("b_", "b_h") if self.two_bias_rows else ("b_",)
        return tuple(f"{part}{g}" for g in self.gates for part in ("W_x", "W_h", *rows))


#: ``keras.layers.SimpleRNN``: one block, ``h``.
SIMPLE_RNN_LAYOUT = KerasLayout(gates=("h",))
#: ``keras.layers.LSTM``: the gates' blocks in Keras's order i, f, c, o.
LSTM_LAYOUT = KerasLayout(gates=("i", "f", "c", "o"))
#: ``keras.layers.GRU(reset_after=False)``: z, r, h and one bias row.
GRU_LAYOUT = KerasLayout(gates=("z", "r", "h"))
#: ``keras.layers.GRU`` (``reset_after=True``, the default): z, r, h and two bias rows.
GRU_RESET_AFTER_LAYOUT = KerasLayout(gates=("z", "r", "h"), two_bias_rows=True)


def split_keras_weights(weights, layout: KerasLayout) -> dict[str, np.ndarray]:
    """Check Keras's ``[kernel, recurrent_kernel(, bias)]`` and cut it into per-gate blocks.

    Returns a dict with ``W_x<g>`` (D, H) and ``W_h<g>`` (H, H) for each gate ``g``, and
    ``b_<g>`` (H,), ``None`` when there is no bias; for a two-row bias, ``b_<g>`` is the input
    row and ``b_h<g>`` the recurrent row.
    """
    weights = list(weights)
    if len(weights) not in (2, 3):
        raise ValueError(
            "Keras recurrent weights must be [kernel, recurrent_kernel] or "
            f"[kernel, recurrent_kernel, bias], got {len(weights)} arrays"
        )
    k = len(layout.gates)
    kernel = as_float_array(weights[0], "kernel", ndim=2)
    if kernel.shape[1] % k:
        raise ValueError(f"kernel must have shape (D, {k}H), got {kernel.shape}")
    units = kernel.shape[1] // k
    hidden = f"{k}H" if k > 1 else "H"
    recurrent = as_float_array(weights[1], "recurrent_kernel", ndim=2)
    check_shape(recurrent, "recurrent_kernel", (units, k * units), f"(H, {hidden})")
    blocks = {}
    for position, g in enumerate(layout.gates):
        columns = slice(position * units, (position + 1) * units)
        blocks[f"W_x{g}"] = kernel[:, columns]
        blocks[f"W_h{g}"] = recurrent[:, columns]
    if len(weights) == 3:
        if layout.two_bias_rows:
            bias = as_float_array(weights[2], "bias", ndim=2)
            check_shape(bias, "bias", (2, k * units), f"(2, {hidden})")
        else:
            bias = as_float_array(weights[2], "bias", ndim=1)
            check_shape(bias, "bias", (k * units,), f"({hidden},)")
        for position, g in enumerate(layout.gates):
            columns = slice(position * units, (position + 1) * units)
            if layout.two_bias_rows:
                blocks[f"b_{g}"], blocks[f"b_h{g}"] = bias[0, columns], bias[1, columns]
            else:
                blocks[f"b_{g}"] = bias[columns]
    else:
        blocks.update({f"b_{g}": None for g in layout.gates})
    return blocks


def join_keras_weights(blocks: dict[str, np.ndarray | None], layout: KerasLayout) -> list:
    """The inverse of :func:`split_keras_weights`: ``[kernel, recurrent_kernel(, bias)]``."""
    gates = layout.gates
    weights = [
        np.concatenate([blocks[f"W_x{g}"] for g in gates], axis=1),
        np.concatenate([blocks[f"W_h{g}"] for g in gates], axis=1),
    ]
    if blocks.get(f"b_{gates[0]}") is not None:
        input_row = np.concatenate([blocks[f"b_{g}"] for g in gates])
        if layout.two_bias_rows:
            recurrent_row = np.concatenate([blocks[f"b_h{g}"] for g in gates])
            weights.append(np.stack([input_row, recurrent_row]))
        else:
            weights.append(input_row)
    return weights


def reorder_gate_blocks(weights, layout: KerasLayout, order) -> list:
    """``weights`` read as if their gate blocks came in ``order``, written back in ``layout``.

    The result is what a reader who takes the blocks of ``weights`` to be in gate ``order`` (a
    permutation of ``layout.gates``) effectively uses: its block of gate ``g`` is the block at
    position ``order.index(g)`` of ``weights``. With ``order == layout.gates`` it is ``weights``.
    """
    if sorted(order) != sorted(layout.gates):
        raise ValueError(f"order must be a permutation of {layout.gates}, got {tuple(order)}")
    as_read = KerasLayout(gates=tuple(order), two_bias_rows=layout.two_bias_rows)
    return join_keras_weights(split_keras_weights(weights, as_read), layout)


def simple_rnn_params_from_keras(weights) -> SimpleRNNParams:
    """Per-gate parameters of a Keras ``SimpleRNN`` / ``SimpleRNNCell`` from its weights list."""
    return SimpleRNNParams(**split_keras_weights(weights, SIMPLE_RNN_LAYOUT))


def keras_weights_from_simple_rnn_params(params: SimpleRNNParams) -> list[np.ndarray]:
    """``[kernel, recurrent_kernel(, bias)]`` for ``layer.set_weights``."""
    _check_type(params, SimpleRNNParams)
    return join_keras_weights(vars(params), SIMPLE_RNN_LAYOUT)


def lstm_params_from_keras(weights) -> LSTMParams:
    """Per-gate parameters of a Keras ``LSTM`` / ``LSTMCell`` (gate order i, f, c, o)."""
    return LSTMParams(**split_keras_weights(weights, LSTM_LAYOUT))


def keras_weights_from_lstm_params(params: LSTMParams) -> list[np.ndarray]:
    """``[kernel, recurrent_kernel(, bias)]`` in Keras's gate order i, f, c, o."""
    _check_type(params, LSTMParams)
    return join_keras_weights(vars(params), LSTM_LAYOUT)


def gru_params_from_keras(weights, *, reset_after: bool) -> GRUParams:
    """Per-gate parameters of a Keras ``GRU`` / ``GRUCell`` (gate order z, r, h).

    The result has ``update_convention="keras"``. With ``reset_after=True`` the two bias rows of
    the update and reset gates only ever appear summed, so they are summed into ``b_z`` and
    ``b_r``; the candidate keeps its input bias ``b_h`` and its recurrent bias ``b_hh``.
    """
    if not isinstance(reset_after, bool):
        raise TypeError(f"reset_after must be True or False, got {reset_after!r}")
    layout = GRU_RESET_AFTER_LAYOUT if reset_after else GRU_LAYOUT
    blocks = split_keras_weights(weights, layout)
    if reset_after and blocks["b_z"] is not None:
        blocks["b_z"] = blocks["b_z"] + blocks.pop("b_hz")
        blocks["b_r"] = blocks["b_r"] + blocks.pop("b_hr")
    return GRUParams(reset_after=reset_after, update_convention="keras", **blocks)


def keras_weights_from_gru_params(
    params: GRUParams, recurrent_activation="sigmoid"
) -> list[np.ndarray]:
    """``[kernel, recurrent_kernel(, bias)]`` for a Keras GRU of ``params.reset_after``.

    Parameters in the notes' update convention are converted first (which needs the
    ``recurrent_activation`` the layer uses). With ``reset_after``, the bias's recurrent row
    holds only the candidate's ``b_hh``; the gates' biases go in the input row.
    """
    _check_type(params, GRUParams)
    params = convert_update_convention(params, "keras", recurrent_activation)
    blocks = dict(vars(params))
    if params.reset_after and params.use_bias:
        blocks["b_hz"] = np.zeros_like(params.b_z)
        blocks["b_hr"] = np.zeros_like(params.b_r)
    layout = GRU_RESET_AFTER_LAYOUT if params.reset_after else GRU_LAYOUT
    return join_keras_weights(blocks, layout)


# Keras class name (layer or cell) -> how to read its weights.
_READERS = {
    "SimpleRNN": lambda layer, w: simple_rnn_params_from_keras(w),
    "SimpleRNNCell": lambda layer, w: simple_rnn_params_from_keras(w),
    "LSTM": lambda layer, w: lstm_params_from_keras(w),
    "LSTMCell": lambda layer, w: lstm_params_from_keras(w),
    "GRU": lambda layer, w: gru_params_from_keras(w, reset_after=_config(layer)["reset_after"]),
    "GRUCell": lambda layer, w: gru_params_from_keras(w, reset_after=_config(layer)["reset_after"]),
}


def params_from_keras(layer):
    """Per-gate parameters of a Keras ``SimpleRNN``, ``LSTM`` or ``GRU`` layer or cell.

    Raises
    ------
    TypeError
        For any other object (a ``Bidirectional`` layer: use :func:`from_keras`).
    """
    reader = _READERS.get(type(layer).__name__)
    if reader is None:
        raise TypeError(
            f"expected a Keras SimpleRNN, LSTM or GRU layer or cell, got {type(layer).__name__}"
        )
    return reader(layer, layer.get_weights())


def from_keras(layer):
    """The layer spec that computes what a built Keras recurrent layer computes.

    Supports ``SimpleRNN``, ``LSTM``, ``GRU`` and ``Bidirectional`` of them, with their
    activations, ``return_sequences``, ``return_state`` and ``go_backwards``. Stateful layers
    are refused (their state outlives a call).
    """
    name = type(layer).__name__
    if name == "Bidirectional":
        return Bidirectional(
            forward=from_keras(layer.forward_layer),
            backward=from_keras(layer.backward_layer),
            merge_mode=layer.merge_mode,
        )
    if name not in ("SimpleRNN", "LSTM", "GRU"):
        raise TypeError(f"expected a Keras SimpleRNN, LSTM, GRU or Bidirectional layer, got {name}")
    config = _config(layer)
    if config.get("stateful"):
        raise ValueError(f"stateful layers are not supported, got stateful=True on {layer.name}")
    options = {
        "params": params_from_keras(layer),
        "activation": config["activation"],
        "return_sequences": config["return_sequences"],
        "return_state": config["return_state"],
        "go_backwards": config["go_backwards"],
    }
    if name == "SimpleRNN":
        return SimpleRNN(**options)
    options["recurrent_activation"] = config["recurrent_activation"]
    return (LSTM if name == "LSTM" else GRU)(**options)


def set_keras_weights(layer, params, recurrent_activation="sigmoid") -> None:
    """Load per-gate parameters into a built Keras layer or cell, checking every shape first."""
    writers = {
        SimpleRNNParams: keras_weights_from_simple_rnn_params,
        LSTMParams: keras_weights_from_lstm_params,
        GRUParams: lambda p: keras_weights_from_gru_params(p, recurrent_activation),
    }
    writer = writers.get(type(params))
    if writer is None:
        raise TypeError(f"params must be SimpleRNNParams, LSTMParams or GRUParams, got {params!r}")
    expected = [tuple(w.shape) for w in layer.get_weights()]
    weights = writer(params)
    received = [w.shape for w in weights]
    if expected != received:
        raise ValueError(
            f"{type(layer).__name__} {layer.name!r} has weights of shapes {expected}; "
            f"the params give {received}"
        )
    layer.set_weights(weights)


def _config(layer) -> dict:
    config = layer.get_config()
    for key in ("activation", "recurrent_activation"):
        if isinstance(config.get(key), dict):  # a serialised activation object
            config[key] = config[key].get("config", {}).get("name", config[key])
    return config


def _check_type(params, expected: type) -> None:
    if not isinstance(params, expected):
        raise TypeError(f"params must be {expected.__name__}, got {type(params).__name__}")
