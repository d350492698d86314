"""The outputs of real Keras layers stored with the assignments, read back during grading.

``scripts/make_keras_reference.py`` runs the layers and writes the files into
``solutions/<assignment>/``; nbgrader releases them to learners and copies the instructor's
version next to every submission before grading. Grading reads that copy from the working
directory and checks its SHA-256 against the digest the script recorded, so a notebook that
rewrites the file cannot move the target.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .core import fail
from .reference_digests import DIGESTS

FILES = {
    "lstm": "keras_lstm_reference.npz",
    "gru": "keras_gru_reference.npz",
    "brnn": "keras_bidirectional_reference.npz",
}
"""Assignment -> the reference file in ``solutions/<assignment>/``."""


def load(assignment: str, directory: str | Path = ".") -> dict[str, np.ndarray]:
    """The arrays of ``assignment``'s reference file in ``directory``, after the digest check."""
    path = Path(directory) / FILES[assignment]
    if not path.is_file():
        fail(
            f"找不到 {path.name}（the Keras reference file is missing）：它应与笔记本在同一文件夹。"
        )
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != DIGESTS[assignment]:
        fail(f"{path.name} 被改动过（the Keras reference file was modified）。")
    with np.load(path) as arrays:
        return {name: arrays[name] for name in arrays.files}
