"""What every chapter runs first: TensorFlow without its start-up logs, the usual imports, seeds.

A chapter's first cell imports what it uses from here and calls :func:`start`::

    from course_setup import keras, layers, np, plt, start, tf

    start(seed=2020, precision=4)

The website runs the chapters in ``book/``, where this module is importable. The chapter notebooks
of Colab and Binder carry a copy of it (``scripts/sync_chapter_notebooks.py`` inlines it), so that
each runs on its own, with no file to upload.

The build's cache (jupyter-cache, ``_build/.jupyter_cache``) knows a chapter by its own cells only:
after changing this module, remove that folder so that ``bash scripts/build.sh`` runs the chapters
again (the tests' build always starts from scratch).
"""

import os

# TensorFlow's C++ start-up logs: both variables must be set before TensorFlow is imported.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from keras import layers

__all__ = ["keras", "layers", "np", "plt", "start", "tf"]


def start(seed: int, *, precision: int | None = None, deterministic: bool = False) -> None:
    """Draw figures inline, seed every generator, and print the versions in use.

    Parameters
    ----------
    seed : int
        The seed of Python's, NumPy's and TensorFlow's generators (``keras.utils.set_random_seed``).
    precision : int, optional
        Digits NumPy prints after the point (small numbers printed without exponents); NumPy's
        default when not given.
    deterministic : bool
        Make TensorFlow's operations deterministic, so that training gives the same numbers at
        every build.
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        # Figures inline even where MPLBACKEND selects a non-interactive backend (the build's).
        shell.run_line_magic("matplotlib", "inline")
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if precision is not None:
        np.set_printoptions(precision=precision, suppress=True)
    print("TensorFlow", tf.__version__, "| Keras", keras.__version__)
