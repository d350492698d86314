"""The outputs of real Keras layers, stored twice: in the notebooks, and here for grading.

``scripts/make_keras_reference.py`` runs the layers and writes each assignment's arrays into
``gradecheck/data/`` (with their SHA-256 in :mod:`gradecheck.reference_digests`) and, as the same
bytes encoded in base64, into a read-only cell of the assignment's notebook, so that the notebook
runs every visible check alone (downloaded, on Colab, fetched from the exchange). The hidden
tests read only this package's copy, after its digest check: nothing the notebook carries (or a
file a learner hands in beside it) moves the target.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import numpy as np

from .core import fail
from .reference_digests import DIGESTS

DATA = Path(__file__).resolve().parent / "data"
"""The folder of the stored arrays (instructor-only, like the rest of the package)."""

FILES = {
    "lstm": "keras_lstm_reference.npz",
    "gru": "keras_gru_reference.npz",
    "brnn": "keras_bidirectional_reference.npz",
}
"""Assignment -> its reference file in :data:`DATA`."""

LOAD_CELLS = {"lstm": "lstm_keras_load", "gru": "gru_keras_load", "brnn": "brnn_keras_load"}
"""Assignment -> the id of the read-only notebook cell that carries the arrays."""

EMBEDDED_NAME = "KERAS_REFERENCE"
"""The notebook's name for the arrays' base64 text."""


def path(assignment: str) -> Path:
    """Where ``assignment``'s reference arrays are stored for grading."""
    return DATA / FILES[assignment]


def load(assignment: str) -> dict[str, np.ndarray]:
    """The arrays of ``assignment``'s stored reference file, after the digest check."""
    stored = path(assignment)
    if not stored.is_file():
        fail(f"找不到 {stored.name}（the grader's Keras reference file is missing）。")
    data = stored.read_bytes()
    if hashlib.sha256(data).hexdigest() != DIGESTS[assignment]:
        fail(f"{stored.name} 被改动过（the grader's Keras reference file was modified）。")
    return arrays_of(data)


def arrays_of(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive's bytes (never pickled objects)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def load_cell_source(assignment: str, data: bytes, after: str = "") -> str:
    """The notebook's read-only cell that carries ``data`` (the ``.npz`` bytes) in base64.

    ``after`` is the rest of the cell (code that uses ``reference``), kept as it is.
    """
    text = base64.b64encode(data).decode("ascii")
    lines = "\n".join(f'    "{text[i : i + 72]}"' for i in range(0, len(text), 72))
    head = (
        "# The weights, an input and the output of a real Keras layer, stored in this notebook\n"
        "# so that it runs on its own (no data file to upload). Grading uses its own copy.\n"
        "import base64\n"
        "import io\n"
        "\n"
        f"{EMBEDDED_NAME} = (\n{lines}\n)\n"
        f"reference = dict(np.load(io.BytesIO(base64.b64decode({EMBEDDED_NAME}))))\n"
        "print({name: array.shape for name, array in reference.items()})"
    )
    return head + ("\n\n" + after if after else "")


def embedded_bytes(source: str) -> bytes:
    """The ``.npz`` bytes a load cell's source carries (see :func:`load_cell_source`)."""
    start = source.index(f"{EMBEDDED_NAME} = (\n") + len(EMBEDDED_NAME) + 5
    end = source.index("\n)\n", start)
    parts = [line.strip().strip('"') for line in source[start:end].splitlines()]
    return base64.b64decode("".join(parts), validate=True)


def code_after_load(source: str) -> str:
    """What a load cell holds after the loading lines (the brnn notebook names its weights)."""
    rest = source.split("print({name: array.shape for name, array in reference.items()})", 1)
    return rest[1].strip("\n") if len(rest) == 2 else ""
