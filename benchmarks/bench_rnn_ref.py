"""Forward and backward time of rnn_ref against the Keras layer on the same input and weights.

Forward: the layer's output sequence. Backward: the gradients of a loss given by a random
upstream gradient on that sequence, with respect to the input and every weight (rnn_ref's
BPTT, rnn_ref.bptt.layer_bptt, against tf.GradientTape on the Keras layer, eager and inside a
tf.function). For each layer the three contenders run in turn, interleaved, so that all of
them see the same machine load; the script prints the median (and the minimum) of the repeats
and the ratios.
Usage: python benchmarks/bench_rnn_ref.py [--n 64 --t 100 --d 32 --h 64 --repeats 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras
import numpy as np
import tensorflow as tf

import rnn_ref
from rnn_ref.bptt import layer_bptt


def interleaved_seconds(contenders: dict, repeats: int) -> dict[str, list[float]]:
    """Run each contender once per round, ``repeats`` rounds, after one warm-up round."""
    for function in contenders.values():
        function()  # tracing, allocation
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, function in contenders.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    """Time each layer kind in rnn_ref and in Keras (eager and compiled) and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in [("n", 64), ("t", 100), ("d", 32), ("h", 64), ("repeats", 30)]:
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.n, args.t, args.d)).astype("float32")
    print(f"input (N, T, D) = {x.shape}, H = {args.h}; {args.repeats} interleaved rounds")
    print("times in ms: median (min)")
    layers = {}
    for kind in ("SimpleRNN", "LSTM", "GRU"):
        # Keras's own random initialisers: large random weights make a long run chaotic.
        layer = getattr(keras.layers, kind)(args.h, return_sequences=True)
        layer(x)
        layers[kind] = layer

    print("forward")
    print_header()
    for kind, layer in layers.items():
        spec = rnn_ref.from_keras(layer)
        graph = tf.function(layer)
        np.testing.assert_allclose(spec(x), layer(x), rtol=1e-4, atol=1e-5)
        times = interleaved_seconds(
            {
                "rnn_ref": lambda spec=spec: spec(x),
                "eager": lambda layer=layer: layer(x).numpy(),
                "graph": lambda graph=graph: graph(x).numpy(),
            },
            args.repeats,
        )
        print_row(kind, times)

    print("backward (gradients of the input and the weights)")
    print_header()
    dy = rng.normal(size=(args.n, args.t, args.h)).astype("float32")
    for kind, layer in layers.items():
        spec = rnn_ref.from_keras(layer)

        def tape_gradients(x, dy, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
            return tape.gradient(y, [x, *layer.trainable_weights], output_gradients=dy)

        graph = tf.function(tape_gradients)
        x_tensor, dy_tensor = tf.constant(x), tf.constant(dy)
        ours = layer_bptt(spec, dy, x)
        theirs = tape_gradients(x_tensor, dy_tensor)
        np.testing.assert_allclose(ours.dx, theirs[0], rtol=1e-3, atol=1e-4)
        times = interleaved_seconds(
            {
                "rnn_ref": lambda spec=spec: layer_bptt(spec, dy, x),
                "eager": lambda f=tape_gradients, a=x_tensor, b=dy_tensor: numpy(f(a, b)),
                "graph": lambda f=graph, a=x_tensor, b=dy_tensor: numpy(f(a, b)),
            },
            args.repeats,
        )
        print_row(kind, times)
    print("ratio = rnn_ref median / Keras median (below 1: rnn_ref is faster)")


def numpy(tensors) -> list[np.ndarray]:
    """The tensors' values, as a caller of the gradients would read them."""
    return [t.numpy() for t in tensors]


def print_header() -> None:
    """Print the table's column names."""
    print(f"{'layer':<10}{'rnn_ref':>16}{'Keras eager':>18}{'Keras tf.function':>20}"
          f"{'ratio eager':>13}{'ratio graph':>13}")  # fmt: skip


def print_row(kind: str, times: dict[str, list[float]]) -> None:
    """Print one layer kind's median times in ms (best in parentheses) and the ratios."""
    median = {name: statistics.median(values) for name, values in times.items()}
    shown = {n: f"{median[n] * 1e3:.2f} ({min(times[n]) * 1e3:.2f})" for n in times}
    print(
        f"{kind:<10}{shown['rnn_ref']:>16}{shown['eager']:>18}{shown['graph']:>20}"
        f"{median['rnn_ref'] / median['eager']:>13.2f}"
        f"{median['rnn_ref'] / median['graph']:>13.2f}"
    )


if __name__ == "__main__":
    main()
