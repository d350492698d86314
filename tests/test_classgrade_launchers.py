"""The launchers in the class-grading guide's "多台机器评分" section, checked offline.

The SSH loop, the Slurm batch script and the Kubernetes manifest cannot run here; what can be
checked without a cluster is: each shell block is valid bash, each command they start is a
``classgrade worker`` command line that classgrade's own parser accepts, and the resources they
ask for hold the workers' notebooks at the default limits. (The local two-worker example is run
as written by ``test_classgrade_postgres.py``.)
"""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
import yaml
from paths import ROOT

from classgrade.cli import build_parser
from classgrade.sandbox import Limits

GUIDE = ROOT / "book" / "class-grading.md"
WORKER_OVERHEAD_MB = 2048  # the worker process itself, as the guide says


def section_blocks(language: str) -> list[str]:
    """The ``language`` code blocks of the guide's multi-machine section."""
    text = GUIDE.read_text()
    start = text.index("## 多台机器评分")
    end = text.index("\n## ", start + 1)
    return re.findall(rf"```{language}\n(.*?)```", text[start:end], flags=re.DOTALL)


def worker_commands(script: str) -> list[list[str]]:
    """Every ``python -m classgrade worker …`` command line in a shell script, as words.

    Quotes are dropped first (the SSH example quotes the remote command whole); a command
    ends at the first shell operator or redirection.
    """
    joined = script.replace("\\\n", " ").replace('"', " ").replace("'", " ")
    commands = []
    for line in joined.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if set(token) <= set("();<>|&"):
                if "classgrade" in words and "worker" in words:
                    commands.append(words[words.index("classgrade") + 1 :])
                words = []
            else:
                words.append(token)
    return commands


def _memory_mb(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Gi|Mi|G|M)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit in ("Gi", "G") else 1)


def test_every_shell_block_is_valid_bash():
    blocks = section_blocks("bash")
    assert len(blocks) >= 3  # the local example, SSH, Slurm
    for block in blocks:
        checked = subprocess.run(
            ["bash", "-n"], input=block, capture_output=True, text=True, timeout=60
        )
        assert checked.returncode == 0, f"{checked.stderr}\n{block}"


def test_every_worker_command_is_one_classgrade_accepts():
    commands = [c for block in section_blocks("bash") for c in worker_commands(block)]
    assert len(commands) >= 4  # two local workers, SSH, Slurm
    # What the shell would put in place of the variables the blocks use.
    variables = {"$DB": "postgresql://grader@localhost/rnn_course", "$SLURM_CPUS_PER_TASK": "4"}
    for words in commands:
        args = build_parser().parse_args([variables.get(w, w) for w in words])
        assert args.command == "worker"
        assert args.db.startswith("postgresql://")


def test_the_slurm_script_asks_for_enough_memory_and_starts_workers():
    (script,) = [b for b in section_blocks("bash") if "#SBATCH" in b]
    assert script.startswith("#!/bin/bash\n")
    options = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", script, flags=re.MULTILINE))
    assert {"array", "cpus-per-task", "mem", "time"} <= options.keys()
    (words,) = worker_commands(script)
    assert words[words.index("--processes") + 1] == "$SLURM_CPUS_PER_TASK"
    assert re.search(r"^exec .*-m classgrade worker", script.replace("\\\n", ""), re.MULTILINE)
    processes = int(options["cpus-per-task"])
    needed = processes * Limits().memory_mb + WORKER_OVERHEAD_MB
    assert _memory_mb(options["mem"]) >= needed


def test_the_kubernetes_manifest_runs_a_bounded_unprivileged_worker():
    (manifest,) = section_blocks("yaml")
    deployment = yaml.safe_load(manifest)
    assert deployment["kind"] == "Deployment"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] in ("Unconfined", "Localhost")
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["command"][3:])
    assert container["command"][:3] == ["python", "-m", "classgrade"]
    assert args.command == "worker"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert not container["securityContext"].get("privileged", False)
    password = {e["name"]: e for e in container["env"]}["PGPASSWORD"]
    assert "secretKeyRef" in password["valueFrom"]  # never a literal in the manifest
    assert "value" not in password
    limits = container["resources"]["limits"]
    assert _memory_mb(limits["memory"]) >= args.processes * Limits().memory_mb + WORKER_OVERHEAD_MB
    assert "ephemeral-storage" in limits


@pytest.mark.parametrize("bad", ["sqlite:///gradebook.db", "gradebook.db"])
def test_a_worker_refuses_a_database_that_is_not_postgres(bad, capsys):
    from classgrade.cli import main

    assert main(["worker", "--db", bad]) == 2
    assert "must name a PostgreSQL database" in capsys.readouterr().err
