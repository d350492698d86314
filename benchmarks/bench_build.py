"""Time the website build: a cold build, a rebuild with nothing changed, and each chapter.

Both builds run the README's build command, ``bash scripts/build.sh`` (offline, warnings as
errors), into a separate output folder. The cold build starts from an empty output folder and an
empty jupyter-cache, so every chapter is executed; the rebuild follows it with nothing changed.
Each chapter's execution time comes from the jupyter-cache records of the cold build.
Exits 1 when a target is missed or a build is not clean.
Usage: python benchmarks/bench_build.py [--output DIR]
"""

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from jupyter_cache import get_cache

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 1800
COLD_TARGET_S = 300
REBUILD_TARGET_S = 20
CHAPTER_TARGET_S = 60


def chapter_seconds(output: Path) -> dict[str, float]:
    """Execution time of each executed page, from the build's jupyter-cache."""
    cache = get_cache(output / "_build" / ".jupyter_cache")
    return {
        Path(record.uri).relative_to(ROOT).as_posix(): record.data["execution_seconds"]
        for record in cache.list_cache_records()
    }


def build(output: Path) -> tuple[float, int, str]:
    """Run scripts/build.sh into ``output``: (seconds, exit status, the log's last lines)."""
    start = time.perf_counter()
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build.sh"), "--path-output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    log = (done.stdout + done.stderr).splitlines()
    return time.perf_counter() - start, done.returncode, "\n".join(log[-40:])


def main(argv: list[str] | None = None) -> int:
    """Build the site twice, cold then warm, and print both timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "_build" / "bench-site")
    args = parser.parse_args(argv)

    shutil.rmtree(args.output, ignore_errors=True)
    cold = build(args.output)
    rebuild = build(args.output)
    failed = [(name, b) for name, b in (("cold build", cold), ("rebuild", rebuild)) if b[1]]
    for name, (_, status, log) in failed:
        # Timings still mean something (the work was done), but the build is not clean.
        print(f"The {name} failed (exit {status}):\n{log}\n", file=sys.stderr)

    rows = [
        ("cold build (clean, all notebooks executed)", cold[0], COLD_TARGET_S),
        ("rebuild, nothing changed", rebuild[0], REBUILD_TARGET_S),
    ]
    rows += [
        (f"  execute {page}", seconds, CHAPTER_TARGET_S)
        for page, seconds in sorted(chapter_seconds(args.output).items())
    ]
    missed = 0
    print(f"{'':46} {'seconds':>8} {'target':>8}")
    for name, seconds, target in rows:
        over = seconds > target
        missed += over
        print(f"{name:46} {seconds:8.1f} {'< ' + str(target):>8}{'  MISSED' if over else ''}")
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main())
