"""The lint steps: the pre-commit hooks run what CI runs, and the type checker is strict.

``scripts/test.sh`` (CI) runs ruff and mypy before pytest; ``.pre-commit-config.yaml`` runs the
same commands with the tools in ``.venv``. A step added to one and not the other fails here, and
so does a mypy configuration loosened until an unannotated function (or a needless
``# type: ignore``) passes.
"""

import re

import mypy.api
import pytest
import yaml
from paths import ROOT

PYPROJECT = ROOT / "pyproject.toml"


def ci_lint_commands() -> list[str]:
    """The ruff and mypy command lines of scripts/test.sh, in order."""
    script = (ROOT / "scripts" / "test.sh").read_text()
    return re.findall(r"^((?:ruff|mypy)\b.*)$", script, flags=re.MULTILINE)


def hooks() -> list[dict]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    return [hook for repo in config["repos"] for hook in repo["hooks"]]


def test_the_hooks_run_what_ci_runs_with_the_projects_tools():
    entries = [hook["entry"] for hook in hooks()]
    assert all(entry.startswith(".venv/bin/") for entry in entries)
    assert [entry.removeprefix(".venv/bin/") for entry in entries] == ci_lint_commands()
    assert ci_lint_commands() == ["ruff check .", "ruff format --check .", "mypy"]


def test_the_hooks_download_nothing_and_check_the_whole_tree():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    for hook in hooks():
        # A command on the machine (no environment to build) given no file names: like CI, it
        # checks what the configuration says, not only the files a commit touches.
        assert hook["language"] == "unsupported"
        assert hook["pass_filenames"] is False


def typecheck(tmp_path, source: str) -> tuple[str, int]:
    module = tmp_path / "new_module.py"
    module.write_text(source)
    cache = tmp_path / "mypy-cache"
    out, err, status = mypy.api.run(
        ["--config-file", str(PYPROJECT), "--cache-dir", str(cache), str(module)]
    )
    return out + err, status


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def scale(x, factor):\n    return x * factor\n", "missing a type annotation"),
        (
            "def scale(x: float, factor) -> float:\n    return x * factor\n",
            "missing a type annotation for one or more parameters",
        ),
        (
            "def scale(x: float, factor: float):\n    return x * factor\n",
            "missing a return type annotation",
        ),
    ],
)
def test_mypy_fails_an_unannotated_new_function(tmp_path, source, message):
    output, status = typecheck(tmp_path, source)
    assert status == 1, output
    assert message in output


def test_mypy_passes_the_same_function_annotated(tmp_path):
    output, status = typecheck(
        tmp_path, "def scale(x: float, factor: float) -> float:\n    return x * factor\n"
    )
    assert status == 0, output


def test_mypy_fails_an_ignore_comment_that_silences_nothing(tmp_path):
    output, status = typecheck(
        tmp_path, "def half(x: float) -> float:\n    return x / 2  # type: ignore[operator]\n"
    )
    assert status == 1, output
    assert "[unused-ignore]" in output


def test_mypy_checks_both_packages_ci_grades_with():
    """classgrade and gradecheck are what the configuration checks (a bare ``mypy`` in CI)."""
    import tomllib

    config = tomllib.loads(PYPROJECT.read_text())["tool"]["mypy"]
    assert sorted(config["files"]) == ["classgrade", "gradecheck"]
    silenced = [o["module"] for o in config.get("overrides", []) if o.get("ignore_errors")]
    packages = {m for module in silenced for m in ([module] if isinstance(module, str) else module)}
    assert not packages & {"classgrade", "classgrade.*", "gradecheck", "gradecheck.*"}
