"""The catalogue of known mistakes: what the feedback says when a wrong answer matches one.

Each text completes "看起来你…" (:func:`gradecheck.core.compare`): the mistake in Chinese, then a
short English gloss in full-width parentheses. The checks only choose which mistakes apply and
compute their wrong values; every text is written here once. :func:`gate_mistakes` computes the
known wrong versions of a gate, which every assignment has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# -- a gate: activation(x_t W_x + h_prev W_h + b) ------------------------------------------------

ACTIVATION_MISSING = "没有用激活函数（activation missing）"
BIAS_MISSING = "漏了偏置（bias missing）"
WEIGHTS_SWAPPED = "把 x 和 h 的权重用反了（h and x weights swapped）"


def activation_swapped(used: str, expected: str) -> str:
    """``used`` (tanh or sigmoid) where ``expected`` (the other one) belongs."""
    return f"用了 {used} 而不是 {expected}（tanh and sigmoid swapped）"


def gate_mistakes(
    gate: Callable[..., np.ndarray], expected_activation: str
) -> Callable[..., dict[str, np.ndarray]]:
    """Known wrong versions of ``activation(x_t W_x + h_prev W_h + b)`` computed with ``gate``.

    ``gate(x_t, h_prev, W_x, W_h, b, activation=...)`` is the correct function; the result takes
    a case's arguments and returns its mistakes.
    """
    other = "tanh" if expected_activation == "sigmoid" else "sigmoid"

    def mistakes(
        x_t: np.ndarray,
        h_prev: np.ndarray,
        W_x: np.ndarray,
        W_h: np.ndarray,
        b: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        found = {
            activation_swapped(other, expected_activation): gate(
                x_t, h_prev, W_x, W_h, b, activation=other
            ),
            ACTIVATION_MISSING: gate(x_t, h_prev, W_x, W_h, b, activation="linear"),
        }
        if b is not None:
            found[BIAS_MISSING] = gate(x_t, h_prev, W_x, W_h, None)
        if W_x.shape == W_h.shape:
            found[WEIGHTS_SWAPPED] = gate(x_t, h_prev, W_h, W_x, b)
        return found

    return mistakes


# -- a run over a sequence -----------------------------------------------------------------------

LAST_STEP_ONLY = "只返回了最后一步（returned only the last step instead of every step）"
RAN_BACKWARDS = "按时间倒序处理了序列（ran the sequence backwards）"
STATE_NOT_CARRIED = "没有把 h_t 传给下一步（the state is not carried to the next step）"


def initial_states_ignored(states: tuple[str, ...]) -> str:
    """The initial states ``states`` (``("h0",)``, ``("h0", "c0")``) were not used."""
    gloss = f"{states[0]} ignored" if len(states) == 1 else "initial states ignored"
    return f"忽略了初始状态 {'、'.join(states)}（{gloss}）"


# -- Keras's weight layouts ------------------------------------------------------------------------


def gate_order_wrong(order: Sequence[str], gates: Sequence[str]) -> str:
    """A forward pass that read the gate blocks in ``order``; Keras's order is ``gates``."""
    return (
        f"按 {', '.join(order)} 的顺序切分了权重；Keras 是 {', '.join(gates)}（gate order wrong）"
    )


def block_taken(field: str, position: int, gates: Sequence[str]) -> str:
    """Field ``field`` of the split weights is the block at ``position`` (0-based) of ``gates``."""
    return (
        f"把 {field} 取成了 Keras 的第 {position + 1} 块（{gates[position]}）；"
        f"Keras 的门顺序是 {', '.join(gates)}（gate order wrong）"
    )


# -- LSTM ----------------------------------------------------------------------------------------

FORGET_AND_INPUT_SWAPPED = "把 g_f 和 g_i 用反了（forget and input gates swapped）"
FORGET_GATE_NOT_APPLIED = "没有用遗忘门（forget gate not applied to c_prev）"
INPUT_GATE_NOT_APPLIED = "没有用输入门（input gate not applied to c_bar）"
CELL_STATE_TANH = "多加了 tanh（c_t has no tanh）"
HIDDEN_OUTPUT_TANH_MISSING = "漏了 tanh（tanh missing: h_t = g_o ⊙ tanh(c_t)）"
STEP_RESULTS_SWAPPED = "把返回值的顺序写反了（returned (c_t, h_t) instead of (h_t, c_t)）"
HIDDEN_OUTPUT_FROM_C_PREV = "用 c_{t-1} 而不是 c_t 计算 h_t（h_t uses c_prev）"

# -- GRU -----------------------------------------------------------------------------------------

UPDATE_CONVENTION_SWAPPED = (
    "把更新门的约定用反了（update-gate convention swapped）：笔记中 "
    "h_t = (1 − g_z) ⊙ h_{t-1} + g_z ⊙ h̄_t，Keras 的 z = 1 − g_z"
)
RESET_AFTER_PRODUCT = (
    "把复位门放在了矩阵乘法之后（reset applied after the product）：笔记中是 (g_r ⊙ h_{t-1}) W_hh"
)
RESET_BEFORE_PRODUCT = (
    "把复位门放在了矩阵乘法之前（reset applied before the product）：Keras 默认 reset_after=True，"
    "是 g_r ⊙ (h_{t-1} W_hh + b_hh)"
)
RESET_GATE_NOT_APPLIED = "没有用复位门（reset gate not applied）"
ONE_MINUS_UPDATE_MISSING = "漏了 (1 − g_z)（h_t = h_{t-1} + g_z ⊙ h̄_t）"
RECURRENT_BIAS_OUTSIDE_RESET = (
    "把 b_hh 放在了复位门外面（b_hh outside the reset: g_r ⊙ (h W_hh + b_hh)）"
)
RECURRENT_BIAS_MISSING = "漏了 b_hh（recurrent bias missing）"
INPUT_BIAS_MISSING = "漏了 b_h（input bias missing）"
BIAS_ROWS_SWAPPED = (
    "把 bias 的两行用反了（bias rows swapped: row 0 is the input bias, row 1 the recurrent）"
)

# -- Bidirectional -------------------------------------------------------------------------------

GO_BACKWARDS_FLIPPED_BACK = (
    "把输出翻转回了原来的时间顺序（flipped the output back: go_backwards keeps the processing "
    "order; Bidirectional flips it back, go_backwards does not）"
)
INPUT_NOT_REVERSED = "没有倒着读序列（the input was not reversed）"
MERGED_IN_WRONG_ORDER = "把前向和反向的顺序写反了（forward and backward swapped）"
BACKWARD_FIRST = "把反向输出放在了前面（backward first: Keras puts the forward output first）"
CONCATENATED_ALONG_WRONG_AXIS = "沿着错误的轴拼接（concatenated along the wrong axis）"
AVERAGED_NOT_SUMMED = "求了平均而不是和（averaged instead of summed）"
SUMMED_NOT_AVERAGED = "求了和而不是平均（summed instead of averaged）"
ADDED_NOT_MULTIPLIED = "相加而不是逐元素相乘（added instead of multiplied）"
BACKWARD_NOT_FLIPPED_BACK = (
    "没有把反向输出翻转回来（the backward output was not flipped back in time）"
)
BACKWARD_LAYER_NOT_REVERSED = (
    "反向层没有倒着读序列（the backward layer did not read the sequence backwards）"
)
DIRECTIONS_SWAPPED = "把前向和反向用反了（forward and backward swapped）"
BACKWARD_STATE_FROM_WRONG_END = (
    "反向的最终状态取成了翻转后序列的最后一步（the backward final state is the one after "
    "reading x_0, i.e. its last processed step）"
)

# -- Backward passes (bptt) ---------------------------------------------------------------------

TANH_DERIVATIVE_MISSING = "漏了 tanh 的导数 1 − h_t²（the missing 1 − h² factor）"
CANDIDATE_DERIVATIVE_MISSING = "漏了 tanh 的导数 1 − c̄_t²（the missing 1 − c̄² factor）"
CANDIDATE_STATE_DERIVATIVE_MISSING = "漏了 tanh 的导数 1 − h̄_t²（the missing 1 − h̄² factor）"
SIGMOID_DERIVATIVE_MISSING = "漏了 sigmoid 的导数 g ⊙ (1 − g)（the missing g(1 − g) factor）"
SIGMOID_DERIVATIVE_FOR_TANH = (
    "用了 sigmoid 的导数 g ⊙ (1 − g)，tanh 的导数是 1 − g²（sigmoid and tanh derivatives swapped）"
)
TANH_DERIVATIVE_FOR_SIGMOID = (
    "用了 tanh 的导数 1 − g²，sigmoid 的导数是 g ⊙ (1 − g)（sigmoid and tanh derivatives swapped）"
)
TANH_APPLIED_TWICE = (
    "用 1 − tanh²(h_t) 代替了 1 − h_t²：h_t 已经是 tanh 的输出（tanh applied twice）"
)
WEIGHT_GRADIENT_TRANSPOSED = "把权重的梯度转置了：dW_x = x_tᵀ · da（transposed weight gradients）"
WEIGHT_NOT_TRANSPOSED = "乘了 W 而不是 Wᵀ：dh_prev = da · W_hᵀ（weights not transposed）"
BATCH_MEAN = "对批量求了平均而不是求和（batch mean instead of sum）"
BIAS_NOT_SUMMED = "db 没有对批量求和：db = Σ_n da（db not summed over the batch）"
NEXT_STEP_NOT_CARRIED = (
    "没有加上下一步传回来的梯度 dh_next（gradient from the next step not carried back）"
)
OUTPUT_GRADIENT_FORGOTTEN = (
    "只用了最后一步的 dh_seq，漏了每一步的输出梯度 dh_seq[:, t]"
    "（the output gradient at each step forgotten）"
)
NOT_ACCUMULATED = "权重的梯度没有在时间上累加（weight gradients not accumulated over time）"
FORWARD_IN_TIME = "按时间正序做了反向传播：要从 t = T − 1 倒着算到 0（BPTT ran forward in time）"
H_PREV_OFF_BY_ONE = "把 h_t 当成了 h_{t−1}（h_prev off by one step）"
H_PATH_INTO_C_MISSING = (
    "漏了经过 h_t 流进 c_t 的梯度 dh_t ⊙ g_o ⊙ (1 − tanh² c_t)"
    "（the g_o ⊙ (1 − tanh² c) path into c missing）"
)
NEXT_C_NOT_CARRIED = "没有加上下一步传回来的 dc_t（gradient from the next step not carried back）"
TANH_C_DERIVATIVE_MISSING = "漏了 tanh 的导数 1 − tanh²(c_t)（the missing 1 − tanh² c factor）"
ONE_MINUS_C_SQUARED = (
    "用了 1 − c_t² 而不是 1 − tanh²(c_t)：c_t 不是 tanh 的输出（1 − c² instead of 1 − tanh² c）"
)
DG_O_WITHOUT_TANH = "dg_o 应该是 dh_t ⊙ tanh(c_t)，你乘的是 c_t（tanh missing in dg_o）"
FORGET_GATE_MISSING_IN_DC_PREV = (
    "dc_prev 漏了遗忘门：dc_{t−1} = dc_t ⊙ g_f（forget gate missing in dc_prev）"
)
C_PREV_AND_C_BAR_SWAPPED = (
    "把 c_prev 和 c_bar 用反了：dg_f = dc_t ⊙ c_{t−1}，dg_i = dc_t ⊙ c̄_t"
    "（c_prev and c_bar swapped）"
)
DIRECT_PATH_MISSING = (
    "漏了 h_{t−1} 直接流到 h_t 的梯度 dh_t ⊙ (1 − g_z)（the direct path into h_prev missing）"
)
CANDIDATE_PATH_MISSING = (
    "漏了经过候选状态流到 h_{t−1} 的梯度 (da_h W_hhᵀ) ⊙ g_r"
    "（the path through the candidate into h_prev missing）"
)
RESET_MISSING_IN_DH_PREV = (
    "经过候选状态流到 h_{t−1} 的梯度没有乘 g_r：(da_h W_hhᵀ) ⊙ g_r（reset gate missing in dh_prev）"
)
DW_HH_USES_H_PREV = (
    "dW_hh 应该用 (g_r ⊙ h_{t−1})ᵀ · da_h，你用的是 h_{t−1}ᵀ（dW_hh uses h_prev, not g_r ⊙ h_prev）"
)
G_O_MISSING_IN_DC = "漏了 g_o：dc_t = dh_t ⊙ g_o ⊙ (1 − tanh² c_t)（g_o missing in dc_t）"
