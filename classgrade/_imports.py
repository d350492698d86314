"""Run at the start of every Python process in the grading sandbox (a ``.pth`` file imports it).

The sandbox shows only the grading environment's packages (NumPy, SciPy, Matplotlib, what the
kernel needs, the standard library): nothing else is on its disk. This module only makes the
import of anything else say so, instead of a bare "No module named ...". It does not enforce
anything itself. This file is copied into the sandbox on its own and imported as
``_classgrade_imports``; it must not import anything from classgrade.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

MESSAGE = (
    "No module named {name!r}: the grading kernel has only NumPy, SciPy and Matplotlib (and the "
    "standard library); TensorFlow, Keras and other packages are not available when grading"
)


class NotInGradingEnvironment:
    """The last finder on ``sys.meta_path``: reached only when no other finder has the module."""

    @staticmethod
    def find_spec(
        name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        # Only an import statement or import_module of a top-level name gets the message:
        # importlib.util.find_spec, which libraries use to probe for optional packages, still
        # answers None (its caller is not the import machinery's _find_and_load_unlocked).
        if path is not None or sys._getframe(2).f_code.co_name != "_find_and_load_unlocked":
            return None
        raise ModuleNotFoundError(MESSAGE.format(name=name), name=name)


if not any(isinstance(f, NotInGradingEnvironment) for f in sys.meta_path):
    sys.meta_path.append(NotInGradingEnvironment())
