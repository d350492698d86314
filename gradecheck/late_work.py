"""The course's late-work policy: nbgrader's ``LateSubmissionPlugin``, with extensions.

``nbgrader_config.py`` makes it the plugin of nbgrader's ``AssignLatePenalties``, which both
``nbgrader autograde`` and ``python -m classgrade grade`` run after recording a notebook's
grades, so both apply the same penalty to the same submission:

- **Due dates** are nbgrader's own, one per assignment in the gradebook
  (``nbgrader db assignment add lstm --duedate="2026-03-01 23:59:00 Asia/Shanghai"``).
- **Extensions** are recorded in ``nbgrader_config.py`` (``c.LatePenalty.extensions``: hours
  per learner per assignment), not with the gradebook's ``grant_extension``: a regrade replaces
  the learner's submission row, and an extension kept on that row would go with it. A change to
  the configuration also makes ``classgrade`` grade the assignment again.
- **The penalty**: ``percent_per_day`` of the notebook's score for each day or part of a day
  past the due date and the learner's extension; past ``zero_after_days`` days, the whole score.
- **No valid submission time** (``timestamp.txt`` missing, empty or not a date) for an assignment
  with a due date fails the grading of that submission with a reason that says so: a submission
  whose time is unknown is never graded as on time.

This module runs in nbgrader's (or classgrade's) own process, never in a learner's kernel.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from nbgrader.plugins import LateSubmissionPlugin
from nbgrader.preprocessors import latesubmissions
from nbgrader.utils import parse_utc
from traitlets import Dict, Float

SECONDS_PER_DAY = 86400.0


class LateWorkError(ValueError):
    """A submission's lateness cannot be judged (no valid submission time).

    Its message is the whole reason: ``classgrade`` shows it as it is (``refuses_submission``)
    to the instructor and in the learner's feedback, not as a failure to record grades.
    """

    refuses_submission = True


def penalty_for(
    score: float, seconds_late: float, percent_per_day: float, zero_after_days: float
) -> float:
    """The points taken off ``score`` for a submission ``seconds_late`` past its deadline."""
    if seconds_late <= 0 or score <= 0:
        return 0.0
    days = math.ceil(seconds_late / SECONDS_PER_DAY)
    if days > zero_after_days:
        return float(score)
    return round(min(1.0, days * percent_per_day / 100.0) * score, 6)


def no_timestamp_reason(assignment: str, duedate: object) -> str:
    """Why a submission without a valid time is not graded."""
    return (
        f"no valid submission time (timestamp.txt missing, empty or not a date) and {assignment} "
        f"is due {duedate}: not graded, never taken as on time; restore its timestamp.txt and "
        "grade it again"
    )


class LatePenalty(LateSubmissionPlugin):
    """The late-work policy (see the module's docstring)."""

    percent_per_day = Float(
        10.0, help="Percent of the score taken off per day (or part of a day) late."
    ).tag(config=True)
    zero_after_days = Float(
        7.0, help="Later than this many days past the deadline, the score is 0."
    ).tag(config=True)
    extensions = Dict(
        value_trait=Dict(value_trait=Float()),
        default_value={},
        help="Extensions in hours: {assignment: {student id: hours}}.",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # nbgrader builds the plugin for each notebook, once it knows which one, and asks it
        # for a penalty only when the submission is late: here is where a submission without
        # a valid time is caught, before it could pass as on time.
        parent = self.parent
        if parent is not None and getattr(parent, "db_url", None):
            self._require_timestamp(parent.assignment_id, parent.student_id, parent.db_url)

    @staticmethod
    def _require_timestamp(assignment: str, student: str, db_url: str) -> None:
        # The name as AssignLatePenalties itself looks it up: classgrade lends its open
        # gradebook there (a second connection would not see its uncommitted rows).
        with latesubmissions.Gradebook(db_url) as gb:
            submission = gb.find_submission(assignment, student)
            duedate = submission.assignment.duedate
            if duedate is not None and submission.timestamp is None:
                # nbgrader has saved the notebook's grades by now; they must not stay as if
                # the submission were on time (formgrader and `nbgrader export` read them).
                gb.remove_submission(assignment, student)
                raise LateWorkError(no_timestamp_reason(assignment, duedate))

    def extension_seconds(self, assignment: str, student: str) -> float:
        """The learner's extension for ``assignment``, in seconds (0 without one)."""
        return float(self.extensions.get(assignment, {}).get(student, 0.0)) * 3600.0

    def seconds_late(self, assignment: str, student: str, total_seconds_late: float) -> float:
        """How late the submission is past the due date and the learner's extension."""
        return max(0.0, total_seconds_late - self.extension_seconds(assignment, student))

    def late_submission_penalty(
        self, student_id: str, score: float, total_seconds_late: float
    ) -> float | None:
        """The points taken off a notebook's ``score`` (nbgrader calls this only when late)."""
        assignment = getattr(self.parent, "assignment_id", "")
        late = self.seconds_late(assignment, student_id, total_seconds_late)
        return penalty_for(score, late, self.percent_per_day, self.zero_after_days)


def say_which_timestamp_is_not_a_date(
    assignment: str = "", student: str = "", notebooks: list[str] | None = None, **_: Any
) -> None:
    """``nbgrader autograde``'s pre-convert hook: name a ``timestamp.txt`` that is not a date.

    nbgrader 0.9.6 fails such a submission with ``AttributeError: 'CourseDirectory' object has no
    attribute 'fail'``, which does not say what is wrong; this says it first, on stderr.
    """
    for folder in sorted({Path(nb).parent for nb in notebooks or []}):
        stamp = folder / "timestamp.txt"
        try:
            text = stamp.read_text(encoding="utf-8", errors="replace").strip()[:200]
        except OSError:
            continue
        try:
            parse_utc(text)
        except (ValueError, OverflowError, TypeError):
            print(
                f"[late work] {stamp} is not a date ({text!r}): the submission's time is "
                "unknown, so it is not graded (nbgrader's own error follows)",
                file=sys.stderr,
            )
