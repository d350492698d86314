"""Time the website build: a cold build, a rebuild with nothing changed, and each chapter.

The cold build starts from an empty output folder and an empty jupyter-cache, so every chapter
is executed; the rebuild is the same incremental build scripts/build.sh runs, right after it.
Each chapter's execution time comes from the jupyter-cache records of the cold build.
Exits 1 when a target is missed or a build is not clean (warnings are errors).
Usage: python benchmarks/bench_build.py [--output DIR]
"""

import argparse
import shutil
import sys
from pathlib import Path

from jupyter_cache import get_cache

# The test suite's build command, so that the benchmark times exactly what the tests build.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from site_fixtures import ROOT, build_site

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "_build" / "bench-site")
    args = parser.parse_args(argv)

    shutil.rmtree(args.output, ignore_errors=True)
    cold = build_site(args.output)
    rebuild = build_site(args.output)
    failed = [(name, b) for name, b in (("cold build", cold), ("rebuild", rebuild)) if b.returncode]
    for name, build in failed:
        # Timings still mean something (the work was done), but the build is not clean.
        print(f"The {name} reported problems:\n{build.failure_report()}\n", file=sys.stderr)

    rows = [
        ("cold build (clean, all notebooks executed)", cold.seconds, COLD_TARGET_S),
        ("rebuild, nothing changed", rebuild.seconds, REBUILD_TARGET_S),
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
