"""Claims of the chapters' text that their own cells cannot check, checked from the sources."""

import re

import jupytext
import numpy as np
import yaml
from paths import ROOT

import rnn_ref


def test_each_practice_model_trains_in_a_cell_of_its_own():
    # The practice chapter says each model trains in under a minute: the build's limit per
    # cell says so, provided every model trains in a cell of its own.
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["execute"]["timeout"] <= 60
    chapter = jupytext.read(ROOT / "book" / "practice.md")
    cells = [cell.source for cell in chapter.cells if cell.cell_type == "code"]
    calls = [len(re.findall(r"^train\(", source, re.MULTILINE)) for source in cells]
    assert max(calls) == 1
    assert sum(calls) == 5  # the five models of the chapter's table
    assert "每个模型的训练各占一个代码单元格" in "\n".join(
        cell.source for cell in chapter.cells if cell.cell_type == "markdown"
    )


def test_a_bidirectional_layer_shortens_no_path_between_two_steps():
    # The RNN chapter's exercise 4 and the practice chapter's exercise 3: from x_s to the
    # output at a later step t, the only path is the forward layer's chain of t - s steps;
    # the backward half of y_t does not depend on x_s at all.
    rng = np.random.default_rng(0)
    n, steps, d, h = 2, 12, 3, 4
    params = rnn_ref.SimpleRNNParams(
        W_xh=rng.normal(size=(d, h)), W_hh=rng.normal(size=(h, h)) * 0.5, b_h=rng.normal(size=h)
    )
    forward = rnn_ref.layers.SimpleRNN(params=params, return_sequences=True)
    x = rng.normal(size=(n, steps, d))
    s, t = 2, 9
    changed = x.copy()
    changed[:, s] += 1.0
    y, y_changed = (rnn_ref.bidirectional(v, forward) for v in (x, changed))
    np.testing.assert_array_equal(y_changed[:, t, h:], y[:, t, h:])  # the backward half
    assert np.abs(y_changed[:, t, :h] - y[:, t, :h]).min() > 0  # the forward half
    np.testing.assert_array_equal(y[:, :, :h], forward(x))
    # The backward half at s itself does see x_s: it reads the sequence from the end.
    assert np.abs(y_changed[:, s, h:] - y[:, s, h:]).min() > 0
