"""The bptt assignment's hidden tests, in process: each known backward mistake is named, the
correct functions pass, and every fabricated submission scores as the grading tests expect.

The last part runs the notebook's cells in one namespace, grade cell by grade cell (the
learner's functions put back after each, as the grade cells' substitution does under IPython),
so that a scoring mistake shows up in seconds rather than after a full nbgrader run.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
from assignment_submissions import GRADE_CELLS, submissions, submitted_notebook
from bptt_learner_mistakes import WRONG_ANSWERS, into_namespace
from course import ROOT

from gradecheck import bptt
from gradecheck import mistakes as m
from gradecheck.core import GradeFailure

ASSIGNMENT = "bptt"


def _gate(derivative, **switches):
    def backward(d_gate, x_t, h_prev, g, W_x, W_h):
        return bptt._gate(d_gate, x_t, h_prev, g, W_x, W_h, derivative, **switches)

    return backward


def _bias_not_summed(derivative):
    def backward(d_gate, x_t, h_prev, g, W_x, W_h):
        right = bptt._gate(d_gate, x_t, h_prev, g, W_x, W_h, derivative)
        return (*right[:4], d_gate * bptt._DERIVATIVES[derivative](g))

    return backward


def _sequence(**switches):
    return lambda *args: bptt._bptt(*args, **switches)


def _lstm(**switches):
    return lambda *args: bptt._as_params(bptt._lstm_step(*args, **switches), bptt.LSTMParams)


def _gru(**switches):
    return lambda *args: bptt._as_params(bptt._gru_step(*args, **switches), bptt.GRUParams)


GATE_CHECKS = [
    (bptt.simple_rnn_step_backward, "tanh", m.TANH_DERIVATIVE_MISSING),
    (bptt.forget_gate_backward, "sigmoid", m.SIGMOID_DERIVATIVE_MISSING),
    (bptt.input_gate_backward, "sigmoid", m.SIGMOID_DERIVATIVE_MISSING),
    (bptt.candidate_cell_state_backward, "tanh", m.CANDIDATE_DERIVATIVE_MISSING),
    (bptt.output_gate_backward, "sigmoid", m.SIGMOID_DERIVATIVE_MISSING),
]

MISTAKES = [
    *[
        case
        for check, act, missing in GATE_CHECKS
        for case in (
            (check, _gate("none"), missing),
            (check, _gate(act, mean=True), m.BATCH_MEAN),
            (check, _gate(act, transposed=True), m.WEIGHT_GRADIENT_TRANSPOSED),
            (check, _gate(act, untransposed=True), m.WEIGHT_NOT_TRANSPOSED),
            (check, _bias_not_summed(act), m.BIAS_NOT_SUMMED),
            *(
                [
                    (check, _gate("sigmoid"), m.SIGMOID_DERIVATIVE_FOR_TANH),
                    (check, _gate("tanh twice"), m.TANH_APPLIED_TWICE),
                ]
                if act == "tanh"
                else [(check, _gate("tanh"), m.TANH_DERIVATIVE_FOR_SIGMOID)]
            ),
        )
    ],
    (bptt.simple_rnn_bptt, _sequence(carry=False), m.NEXT_STEP_NOT_CARRIED),
    (bptt.simple_rnn_bptt, _sequence(every_output=False), m.OUTPUT_GRADIENT_FORGOTTEN),
    (bptt.simple_rnn_bptt, _sequence(accumulate=False), m.NOT_ACCUMULATED),
    (bptt.simple_rnn_bptt, _sequence(backwards=False), m.FORWARD_IN_TIME),
    (bptt.simple_rnn_bptt, _sequence(off_by_one=True), m.H_PREV_OFF_BY_ONE),
    (bptt.simple_rnn_bptt, _sequence(derivative="none"), m.TANH_DERIVATIVE_MISSING),
    (bptt.simple_rnn_bptt, _sequence(derivative="tanh twice"), m.TANH_APPLIED_TWICE),
    (bptt.simple_rnn_bptt, _sequence(mean=True), m.BATCH_MEAN),
    (bptt.simple_rnn_bptt, _sequence(transposed=True), m.WEIGHT_GRADIENT_TRANSPOSED),
    (
        bptt.hidden_output_backward,
        lambda dh, g, c: (dh * np.tanh(c), dh * g),
        m.TANH_C_DERIVATIVE_MISSING,
    ),
    (
        bptt.hidden_output_backward,
        lambda dh, g, c: (dh * np.tanh(c), dh * g * (1 - c**2)),
        m.ONE_MINUS_C_SQUARED,
    ),
    (
        bptt.hidden_output_backward,
        lambda dh, g, c: (dh * np.tanh(c), dh * (1 - np.tanh(c) ** 2)),
        m.G_O_MISSING_IN_DC,
    ),
    (
        bptt.hidden_output_backward,
        lambda dh, g, c: (dh * c, dh * g * (1 - np.tanh(c) ** 2)),
        m.DG_O_WITHOUT_TANH,
    ),
    (
        bptt.cell_state_update_backward,
        lambda dc, c_prev, g_f, g_i, c_bar: (dc * g_f, dc * c_bar, dc * c_prev, dc * g_i),
        m.C_PREV_AND_C_BAR_SWAPPED,
    ),
    (
        bptt.cell_state_update_backward,
        lambda dc, c_prev, g_f, g_i, c_bar: (dc * g_i, dc * c_prev, dc * c_bar, dc * g_f),
        m.FORGET_AND_INPUT_SWAPPED,
    ),
    (
        bptt.cell_state_update_backward,
        lambda dc, c_prev, g_f, g_i, c_bar: (dc, dc * c_prev, dc * c_bar, dc * g_i),
        m.FORGET_GATE_MISSING_IN_DC_PREV,
    ),
    (bptt.lstm_step_backward, _lstm(h_path=False), m.H_PATH_INTO_C_MISSING),
    (bptt.lstm_step_backward, _lstm(carry_c=False), m.NEXT_C_NOT_CARRIED),
    (bptt.lstm_step_backward, _lstm(c_derivative="none"), m.TANH_C_DERIVATIVE_MISSING),
    (bptt.lstm_step_backward, _lstm(c_derivative="c"), m.ONE_MINUS_C_SQUARED),
    (bptt.lstm_step_backward, _lstm(forget_in_dc_prev=False), m.FORGET_GATE_MISSING_IN_DC_PREV),
    (bptt.lstm_step_backward, _lstm(mean=True), m.BATCH_MEAN),
    (bptt.lstm_step_backward, _lstm(transposed=True), m.WEIGHT_GRADIENT_TRANSPOSED),
    (bptt.gru_step_backward, _gru(direct=False), m.DIRECT_PATH_MISSING),
    (bptt.gru_step_backward, _gru(convention="keras"), m.UPDATE_CONVENTION_SWAPPED),
    (bptt.gru_step_backward, _gru(candidate_path=False), m.CANDIDATE_PATH_MISSING),
    (bptt.gru_step_backward, _gru(reset_in_path=False), m.RESET_MISSING_IN_DH_PREV),
    (bptt.gru_step_backward, _gru(h_derivative="none"), m.CANDIDATE_STATE_DERIVATIVE_MISSING),
    (bptt.gru_step_backward, _gru(q_in_dW_hh=False), m.DW_HH_USES_H_PREV),
    (bptt.gru_step_backward, _gru(mean=True), m.BATCH_MEAN),
    (bptt.gru_step_backward, _gru(transposed=True), m.WEIGHT_GRADIENT_TRANSPOSED),
]


@pytest.mark.parametrize(("check", "wrong", "text"), MISTAKES)
def test_each_backward_mistake_is_named(check, wrong, text):
    with pytest.raises(GradeFailure) as failure:
        check(wrong, None)
    assert text in str(failure.value)


@pytest.mark.parametrize("name", bptt.ORDER)
def test_the_correct_functions_pass_their_checks(name):
    correct = {**bptt.correct_functions(), "gru_step_backward": _gru()}
    getattr(bptt, name)(correct[name], None)


def test_the_parametrised_passes_are_rnn_refs_with_every_switch_off():
    # Their checks compare with rnn_ref; the mistakes are these passes with one switch on.
    bptt.lstm_step_backward(_lstm(), None)
    bptt.simple_rnn_bptt(_sequence(), None)


def test_a_result_of_the_wrong_length_says_what_is_expected():
    with pytest.raises(GradeFailure, match=r"5 个结果 \(dx_t, dh_prev, dW_xh, dW_hh, db_h\)"):
        bptt.simple_rnn_step_backward(lambda *args: args[:4], None)


def test_grads_must_be_the_params_type_with_every_field():
    def no_params(*args):
        return (*_gru()(*args)[:2], [1, 2])

    with pytest.raises(GradeFailure, match="grads 应该是参数类型"):
        bptt.gru_step_backward(no_params, None)


def test_a_bad_call_of_the_correct_step_blames_the_learners_bptt():
    def learner(dh_seq, x, h0, h_seq, W_xh, W_hh):
        return namespace["simple_rnn_step_backward"](dh_seq[:, 0], x, h0, h_seq[:, 0], W_xh, W_hh)

    namespace = {"simple_rnn_step_backward": None}
    with pytest.raises(GradeFailure) as failure:
        bptt.simple_rnn_bptt(learner, namespace)
    message = str(failure.value)
    assert "simple_rnn_bptt called simple_rnn_step_backward with bad arguments" in message
    assert "x_t 的形状是 (2, 3, 3)，应为 (N, D) = (2, 3)" in message


# -- learners written independently of the catalogue -------------------------------------------

CORRECT_LEARNERS = ("bptt_learner_loops.py", "bptt_learner_vectorised.py")


def _learner_namespace(file_name: str) -> dict:
    """A fresh namespace holding a learner's functions, as the notebook's globals would."""
    path = Path(__file__).with_name(file_name)
    namespace: dict = {"__name__": "__main__"}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return namespace


@pytest.mark.parametrize("learner", CORRECT_LEARNERS)
@pytest.mark.parametrize("name", bptt.ORDER)
def test_correct_learners_in_other_styles_get_full_marks(learner, name):
    namespace = _learner_namespace(learner)
    getattr(bptt, name)(namespace[name], namespace)


@pytest.mark.parametrize(
    "answer", WRONG_ANSWERS, ids=[answer.function.__name__ for answer in WRONG_ANSWERS]
)
def test_hand_written_mistakes_are_named(answer):
    namespace = _learner_namespace("bptt_learner_loops.py")
    function = into_namespace(answer, namespace)
    with pytest.raises(GradeFailure) as failure:
        getattr(bptt, answer.graded)(function, namespace)
    message = str(failure.value)
    assert message.startswith(f"{answer.graded} 返回的"), message
    assert answer.feedback in message, message


def test_every_graded_function_has_a_hand_written_mistake():
    assert {answer.graded for answer in WRONG_ANSWERS} >= set(bptt.ORDER) - {
        "input_gate_backward"  # the same check as the forget gate's, with its own names
    }


def _cells(notebook_path):
    return nbformat.read(notebook_path, 4).cells


def _grade_in_process(notebook) -> dict[str, str]:
    """Run the handed-in notebook with the source's grade cells; grade cell -> error text."""
    source = {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in _cells(ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
        if cell.metadata.get("nbgrader", {}).get("grade")
    }
    namespace: dict = {}
    errors = {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta:
            continue  # the optional cells run only outside grading
        if not meta.get("grade"):
            exec(compile(cell.source, meta["grade_id"], "exec"), namespace)
            continue
        own = {name: namespace.get(name) for name in bptt.ORDER}
        try:
            exec(compile(source[meta["grade_id"]], meta["grade_id"], "exec"), namespace)
        except Exception as error:
            errors[meta["grade_id"]] = f"{type(error).__name__}: {error}"
        namespace.update(own)  # what the substitution's post_run_cell hook does
    return errors


SUBMISSIONS = submissions()[ASSIGNMENT]


@pytest.mark.parametrize("student", sorted(SUBMISSIONS))
def test_submissions_score_in_process_as_graded(student):
    submission = SUBMISSIONS[student]
    release = nbformat.read(ROOT / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    errors = _grade_in_process(submitted_notebook(release, submission))
    assert set(errors) == set(submission.expected_failures), errors
    for cell, phrase in submission.expected_failures.items():
        assert phrase in errors[cell], (cell, errors[cell])
    assert set(GRADE_CELLS[ASSIGNMENT]) >= set(errors)
