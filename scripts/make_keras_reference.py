"""Run real Keras layers on seeded weights and inputs; store what they compute for the assignments.

The Keras-reproduction exercises of the lstm, gru and brnn assignments compare a learner's
NumPy code with these outputs, so grading never imports TensorFlow. The arrays are written twice:
into ``gradecheck/data/`` with their SHA-256 in ``gradecheck/reference_digests.py`` (the hidden
tests read only that copy and refuse a modified file), and in base64 into the read-only load
cell of ``solutions/<assignment>/<assignment>.ipynb`` (so the released notebook is one file that
runs every visible check alone). Run ``scripts/generate_exercises.py`` afterwards.

    python scripts/make_keras_reference.py            # (re)write the files, digests, notebooks
    python scripts/make_keras_reference.py --check    # compare the stored files with live Keras

Weights come from ``np.random.default_rng(seed)`` and are set on the layers, never Keras's
initialisers: random values in every gate, including the biases, so a learner who splits the
weights in the wrong gate order, or drops a bias, gets visibly different numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # gradecheck, when it is not installed

import nbformat  # noqa: E402

from gradecheck import keras_reference  # noqa: E402
from gradecheck.keras_reference import FILES  # noqa: E402
from rnn_ref.keras_weights import KERAS_FLOAT32_TOLERANCE  # noqa: E402

DIGESTS_MODULE = ROOT / "gradecheck" / "reference_digests.py"
SEED = 20240601


def _keras():
    # Both variables must be set before TensorFlow is imported, or it logs to stderr.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import keras

    return keras


def _random(rng: np.random.Generator, *shape: int, scale: float = 0.5) -> np.ndarray:
    return rng.normal(0.0, scale, shape).astype(np.float32)


def _run(layer, x: np.ndarray, weights: list[np.ndarray]):
    layer.build(x.shape)
    layer.set_weights(weights)
    outputs = layer(x)
    if isinstance(outputs, list | tuple):
        return [np.asarray(o, dtype=np.float32) for o in outputs]
    return np.asarray(outputs, dtype=np.float32)


def _single_layer_data(x, weights, output) -> dict[str, np.ndarray]:
    """The stored arrays of one layer: its input, weights by Keras's names, and output."""
    kernel, recurrent_kernel, bias = weights
    return {
        "x": x,
        "kernel": kernel,
        "recurrent_kernel": recurrent_kernel,
        "bias": bias,
        "output": output,
    }


def lstm_reference() -> dict[str, np.ndarray]:
    """``keras.layers.LSTM(H, return_sequences=True)`` with random weights: N=3, T=6, D=4, H=5."""
    keras = _keras()
    rng = np.random.default_rng([SEED, 1])
    N, T, D, H = 3, 6, 4, 5
    x = _random(rng, N, T, D, scale=1.0)
    weights = [_random(rng, D, 4 * H), _random(rng, H, 4 * H), _random(rng, 4 * H)]
    output = _run(keras.layers.LSTM(H, return_sequences=True), x, weights)
    return _single_layer_data(x, weights, output)


def gru_reference() -> dict[str, np.ndarray]:
    """``keras.layers.GRU(H, return_sequences=True)`` with its defaults (``reset_after=True``)."""
    keras = _keras()
    rng = np.random.default_rng([SEED, 2])
    N, T, D, H = 3, 6, 4, 5
    x = _random(rng, N, T, D, scale=1.0)
    weights = [_random(rng, D, 3 * H), _random(rng, H, 3 * H), _random(rng, 2, 3 * H)]
    layer = keras.layers.GRU(H, return_sequences=True)
    if not layer.reset_after:
        raise RuntimeError(
            "this Keras's GRU default is reset_after=False; the exercise assumes True"
        )
    output = _run(layer, x, weights)
    return _single_layer_data(x, weights, output)


def bidirectional_reference() -> dict[str, np.ndarray]:
    """``Bidirectional(SimpleRNN(H, return_sequences=True, return_state=True))``, every merge mode.

    Also the backward layer alone (``SimpleRNN(go_backwards=True)``) and the forward one alone.
    """
    keras = _keras()
    rng = np.random.default_rng([SEED, 3])
    N, T, D, H = 2, 5, 3, 4
    x = _random(rng, N, T, D, scale=1.0)
    forward = [_random(rng, D, H), _random(rng, H, H), _random(rng, H)]
    backward = [_random(rng, D, H), _random(rng, H, H), _random(rng, H)]
    data = {"x": x}
    for prefix, weights in (("forward", forward), ("backward", backward)):
        for name, w in zip(("kernel", "recurrent_kernel", "bias"), weights, strict=True):
            data[f"{prefix}_{name}"] = w
    data["forward_output"] = _run(keras.layers.SimpleRNN(H, return_sequences=True), x, forward)
    data["go_backwards_output"] = _run(
        keras.layers.SimpleRNN(H, return_sequences=True, go_backwards=True), x, backward
    )
    for mode in ("concat", "sum", "mul", "ave", None):
        rnn = keras.layers.SimpleRNN(H, return_sequences=True, return_state=True)
        outputs = _run(keras.layers.Bidirectional(rnn, merge_mode=mode), x, forward + backward)
        if mode is None:
            data["output_none_forward"], data["output_none_backward"] = outputs[:2]
        else:
            data[f"output_{mode}"] = outputs[0]
        data["forward_state"], data["backward_state"] = outputs[-2:]
    return data


BUILDERS = {"lstm": lstm_reference, "gru": gru_reference, "brnn": bidirectional_reference}


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive whose bytes depend only on the arrays (no timestamps), for digests."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(
                member, np.ascontiguousarray(arrays[name]), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def reference_path(assignment: str, root: Path = ROOT) -> Path:
    """Where ``assignment``'s reference arrays are stored for grading."""
    return root / "gradecheck" / "data" / FILES[assignment]


def notebook_path(assignment: str, root: Path = ROOT) -> Path:
    """The source notebook whose load cell carries the same arrays."""
    return root / "solutions" / assignment / f"{assignment}.ipynb"


def load_cell(notebook, assignment: str):
    """The notebook's read-only cell that carries the reference arrays."""
    wanted = keras_reference.LOAD_CELLS[assignment]
    (cell,) = [
        c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == wanted
    ]
    return cell


def embed(assignment: str, data: bytes, root: Path = ROOT) -> None:
    """Put ``data`` into the load cell of ``assignment``'s source notebook (the rest kept)."""
    path = notebook_path(assignment, root)
    notebook = nbformat.read(path, as_version=4)
    cell = load_cell(notebook, assignment)
    after = keras_reference.code_after_load(cell.source)
    cell.source = keras_reference.load_cell_source(assignment, data, after)
    nbformat.write(notebook, path)


def write(root: Path = ROOT) -> None:
    """Write every assignment's reference file, the digests module and the notebooks' copies."""
    digests = {}
    for assignment, build in BUILDERS.items():
        data = npz_bytes(build())
        reference_path(assignment, root).write_bytes(data)
        digests[assignment] = hashlib.sha256(data).hexdigest()
        embed(assignment, data, root)
        print(f"wrote {reference_path(assignment, root).relative_to(root)} and its notebook copy")
    lines = [f'    "{name}": "{digest}",' for name, digest in sorted(digests.items())]
    DIGESTS_MODULE.write_text(
        '"""SHA-256 of the Keras reference files; scripts/make_keras_reference.py writes it."""\n'
        "\nDIGESTS = {\n" + "\n".join(lines) + "\n}\n"
    )
    print(f"wrote {DIGESTS_MODULE.relative_to(root)}")


def differences(root: Path = ROOT) -> list[str]:
    """What differs between the stored files, the notebooks' copies and live Keras now."""
    problems = []
    for assignment, build in BUILDERS.items():
        path = reference_path(assignment, root)
        if not path.is_file():
            problems.append(f"{path} is missing")
            continue
        notebook = nbformat.read(notebook_path(assignment, root), as_version=4)
        if keras_reference.embedded_bytes(load_cell(notebook, assignment).source) != (
            path.read_bytes()
        ):
            problems.append(f"{assignment}.ipynb: the load cell's arrays are not {path.name}'s")
        live = build()
        with np.load(path) as stored:
            if sorted(stored.files) != sorted(live):
                problems.append(f"{path.name}: arrays {sorted(stored.files)} != {sorted(live)}")
                continue
            for name, value in live.items():
                if stored[name].shape != value.shape or not np.allclose(
                    stored[name], value, **KERAS_FLOAT32_TOLERANCE
                ):
                    problems.append(f"{path.name}: {name} differs from what Keras computes now")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Write the reference files, or with ``--check`` compare them with live Keras."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare the stored files with live Keras"
    )
    args = parser.parse_args(argv)
    if not args.check:
        write()
        return 0
    problems = differences()
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("Regenerate with: python scripts/make_keras_reference.py", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
