"""Run the site's notebook pages alone, as their chapter notebooks, into the build's cache.

`jupyter-book build` (myst-nb, `execute_notebooks: cache`) runs each page whose outputs are not
cached, one after the other. This script runs those pages first, as many at once as the machine
has cores (at most --jobs), and stores each page's outputs in the same cache the way myst-nb
does, so the build that follows takes every page from the cache and runs nothing itself.

Each page runs as the learner's copy of it runs: the chapter notebook that
scripts/sync_chapter_notebooks.py generates from it (notebooks/<page>.ipynb, made afresh here
from the page as it is now), in an empty folder, with neither the book's own modules nor the
checkout importable but through the copies the notebook carries, and with a first cell that
checks so. The page's cells are the notebook's cells, unchanged, so their outputs are the page's:
one run of each chapter shows on the website and proves that its notebook runs alone.

What a run gets is otherwise what the build would give the page: the page is read by myst-nb's
own reader with the site's MyST configuration (so it hashes to the same cache entry), and
executed by the same call (jupyter_cache's single_nb_execution) with the configured cell
timeout, allow_errors (and the raises-exception tags nbclient honours), and this process's
environment without PYTHONPATH. A page that raises is reported with its traceback and left out
of the cache: the build then runs it again in the page's folder, prints the traceback and fails;
this script then exits 1, so a chapter that runs in the checkout but not alone fails too.
A page whose cell outlives the timeout while sharing the cores runs again alone first. Only the
`cache` execution mode is handled; with any other mode this does nothing.

After the build, --after-build gives the executed notebooks myst-nb wrote for the pages it took
from the cache (the pages' downloads) the outputs it left out (see restore_outputs).

    python scripts/execute_chapters.py [SOURCE] [--path-output DIR] [--jobs N] [--report FILE]
    jupyter-book build [SOURCE] [--path-output DIR] ...
    python scripts/execute_chapters.py [SOURCE] [--path-output DIR] --after-build

SOURCE (the repository by default) and --path-output are those given to `jupyter-book build`:
the cache is DIR/_build/.jupyter_cache, unless _config.yml names another (execute.cache).
--report writes each page's run (seconds, and the error of a run that failed) as JSON.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import nbformat
from jupyter_book.config import get_final_config
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.cache.db import NbProjectRecord
from jupyter_cache.executors.utils import ExecutionResult, single_nb_execution
from myst_nb.core.config import NbParserConfig
from myst_nb.core.read import create_nb_reader
from myst_parser.config.main import MdParserConfig
from nbclient.exceptions import CellTimeoutError
from sphinx_external_toc.parsing import parse_toc_yaml
from sync_chapter_notebooks import chapter_notebooks, local_modules

ROOT = Path(__file__).resolve().parent.parent
# Each chapter's kernel keeps about one core busy; more at once than cores only makes each slower.
MAX_JOBS = 4
# The source suffixes Jupyter Book reads pages from.
SOURCE_SUFFIXES = (".md", ".ipynb")


@dataclasses.dataclass
class Page:
    """A notebook page, read as the build reads it, and the settings its run gets."""

    path: Path
    notebook: nbformat.NotebookNode
    read_fmt: dict | None
    config: NbParserConfig


def site_configs(root: Path) -> tuple[MdParserConfig, NbParserConfig]:
    """MyST and myst-nb settings as the build derives them from _config.yml."""
    sphinx_config, _ = get_final_config(
        user_yaml=root / "_config.yml",
        cli_config={"latex_individualpages": False},
        sourcedir=root,
    )
    md_values = {
        name: sphinx_config[f"myst_{name}"]
        for name, _, field in MdParserConfig().as_triple()
        if "sphinx" not in field.metadata.get("omit", []) and f"myst_{name}" in sphinx_config
    }
    nb_values = {
        name: sphinx_config[f"nb_{name}"]
        for name, _, field in NbParserConfig().as_triple()
        if not field.metadata.get("sphinx_exclude") and f"nb_{name}" in sphinx_config
    }
    return MdParserConfig(**md_values), NbParserConfig(**nb_values)


def toc_sources(root: Path) -> list[Path]:
    """The source file of every page in _toc.yml, root first."""
    site_map = parse_toc_yaml(root / "_toc.yml")
    sources = []
    for docname in site_map:
        for suffix in SOURCE_SUFFIXES:
            if (root / f"{docname}{suffix}").is_file():
                sources.append(root / f"{docname}{suffix}")
                break
    return sources


def read_page(path: Path, md_config: MdParserConfig, nb_config: NbParserConfig) -> Page | None:
    """The page as myst-nb reads it (sphinx_.Parser.parse), or None if it is not a notebook."""
    text = path.read_text(encoding="utf-8")
    reader = create_nb_reader(str(path), md_config, nb_config, text)
    if reader is None:
        return None
    notebook = reader.read(text)
    kernel = notebook.metadata.get("kernelspec", {}).get("name")
    if kernel is not None:
        for pattern, alias in nb_config.kernel_rgx_aliases.items():
            if re.fullmatch(pattern, kernel):
                notebook.metadata["kernelspec"]["name"] = alias
                break
    if nb_config.metadata_key in notebook.metadata:
        overrides = dict(notebook.metadata[nb_config.metadata_key])
        overrides.pop("output_folder", None)
        nb_config = nb_config.copy(**overrides)
    return Page(path, notebook, reader.read_fmt, nb_config)


def is_excluded(page: Page) -> bool:
    """Whether execute.exclude_patterns keeps the page from running (as myst-nb matches)."""
    posix_path = PurePosixPath(page.path.as_posix())
    return any(posix_path.match(pattern) for pattern in page.config.execution_excludepatterns)


def probe_cell(source: Path, page: Path) -> nbformat.NotebookNode:
    """Return a first cell that fails when the notebook leans on the checkout.

    That is: a module of the book's own (book/*.py) importable but through the copy the notebook
    carries, a file in its folder, or a folder of the checkout on the import path.
    """
    not_carried = sorted(local_modules(page.parent))
    checkout = sorted({str(source), str(page.parent), str(source / "notebooks")})
    return nbformat.v4.new_code_cell(
        "import importlib.util as _util\n"
        "import os as _os\n"
        "import sys as _sys\n"
        f"_found = [n for n in {not_carried!r} if _util.find_spec(n) is not None]\n"
        "assert _found == [], f'importable without the notebook: {_found}'\n"
        "assert _os.listdir('.') == [], _os.listdir('.')\n"
        f"_paths = [p for p in _sys.path if _os.path.abspath(p or '.') in {checkout!r}]\n"
        "assert _paths == [], f'the checkout is on the path: {_paths}'\n"
    )


def execute(page: Page, chapter: nbformat.NotebookNode, source: Path) -> ExecutionResult:
    """Run ``chapter``, the page's chapter notebook, alone (see the module's docstring).

    On success, the result holds the page's notebook with the outputs of its cells.
    """
    notebook = copy.deepcopy(chapter)
    notebook.metadata = copy.deepcopy(page.notebook.metadata)  # kernel and execution settings
    notebook.cells.insert(0, probe_cell(source, page.path))
    with tempfile.TemporaryDirectory(prefix="chapter-alone-") as cwd:
        result = run(page, notebook, os.path.abspath(cwd))
    if result.err is None:
        result.nb = with_outputs(page.notebook, notebook)
    return result


def run(page: Page, notebook: nbformat.NotebookNode, cwd: str) -> ExecutionResult:
    """Execute ``notebook`` in place in ``cwd``, with the arguments myst-nb passes for the page."""
    return single_nb_execution(
        notebook,
        cwd=cwd,
        allow_errors=page.config.execution_allow_errors,
        timeout=page.config.execution_timeout,
        meta_override=True,
    )


def with_outputs(page: nbformat.NotebookNode, ran: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The page's notebook with the outputs that the run of its chapter notebook gave its cells.

    The chapter notebook holds the page's code cells unchanged and in order, with cells of its
    own between them (the probe, the install cell, the copies of the book's modules). Those are
    left out, and execution counts are those the page's cells would have had alone.
    """
    merged = copy.deepcopy(page)
    wanted = [cell for cell in merged.cells if cell.cell_type == "code"]
    matched = inserted = 0
    for cell in (cell for cell in ran.cells if cell.cell_type == "code"):
        if matched < len(wanted) and cell.source == wanted[matched].source:
            target = wanted[matched]
            matched += 1
            count = None if cell.execution_count is None else cell.execution_count - inserted
            target.execution_count = count
            target.outputs = copy.deepcopy(cell.outputs)
            for output in target.outputs:
                if "execution_count" in output:
                    output.execution_count = count
        elif cell.execution_count is not None:
            inserted += 1
    if matched != len(wanted):
        raise ValueError(
            f"the chapter notebook lacks the page's code cell {matched + 1} of {len(wanted)}"
        )
    return merged


def run_pages(
    pages: list[Page],
    chapters: dict[Path, nbformat.NotebookNode],
    jobs: int,
    source: Path,
    md_config: MdParserConfig,
    nb_config: NbParserConfig,
) -> Iterator[tuple[Page, ExecutionResult]]:
    """Each page with its run, ``jobs`` pages at a time, in the order given.

    Each page runs in its own kernel process; the threads only wait on them, and the caller
    (who writes the cache) gets the results in this thread. A page whose cell outlived the cell
    timeout while it shared the machine with other pages runs again alone afterwards, as the
    build would have run it, with the same timeout.
    """
    alone = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [
            (page, pool.submit(execute, page, chapters[page.path], source)) for page in pages
        ]
        for page, future in futures:
            result = future.result()
            if jobs > 1 and isinstance(result.err, CellTimeoutError):
                print(
                    f"{page.path.name}: a cell timed out beside another page; it runs again alone"
                )
                alone.append(page)
                continue
            yield page, result
    for page in alone:
        again = read_page(page.path, md_config, nb_config)
        assert again is not None
        yield again, execute(again, chapters[page.path], source)


def restore_outputs(pages: list[Page], source: Path, output: Path, cache) -> list[Path]:
    """Give back the outputs of the executed notebooks myst-nb wrote for cached pages.

    For a page it takes from the cache, myst-nb 1.4 renders the cached outputs but writes the
    page's notebook (_build/jupyter_execute/<page>.ipynb, which the theme copies to
    _build/html/_sources/ as the page's download) as read, without outputs. Each such file
    becomes the notebook the page was rendered from: the page merged with its cached run, as
    myst-nb merges it. Returns the files rewritten.
    """
    build = output / "_build"
    rewritten = []
    for page in pages:
        try:
            _, merged = cache.merge_match_into_notebook(page.notebook)
        except KeyError:
            continue  # not cached: the build ran it and wrote its outputs, or it failed
        content = nbformat.writes(merged).encode("utf-8")
        docname = page.path.relative_to(source).with_suffix(".ipynb")
        for path in (build / "jupyter_execute" / docname, build / "html" / "_sources" / docname):
            if path.is_file() and path.read_bytes() != content:
                path.write_bytes(content)
                rewritten.append(path)
    return rewritten


def default_jobs() -> int:
    """As many pages at once as this process may use cores, at most MAX_JOBS."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_JOBS))


def main(argv: list[str] | None = None) -> int:
    """Run the uncached notebook pages into the cache; 1 if a page did not run alone."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=ROOT, help="the book's folder")
    parser.add_argument("--path-output", type=Path, help="as jupyter-book build's (the source)")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="pages run at once")
    parser.add_argument(
        "--after-build",
        action="store_true",
        help="run nothing; give the notebooks the build wrote for cached pages their outputs",
    )
    parser.add_argument("--report", type=Path, help="write each page's run here, as JSON")
    args = parser.parse_args(argv)
    source = args.source.resolve()
    output = (args.path_output or source).resolve()

    md_config, nb_config = site_configs(source)
    if nb_config.execution_mode != "cache":
        print(f"execute_notebooks is {nb_config.execution_mode!r}: the build runs the pages")
        return 0
    cache_path = nb_config.execution_cache_path or str(output / "_build" / ".jupyter_cache")
    cache = get_cache(cache_path)

    read = [read_page(path, md_config, nb_config) for path in toc_sources(source)]
    pages = [page for page in read if page is not None]
    if args.after_build:
        rewritten = restore_outputs(pages, source, output, cache)
        print(f"gave {len(rewritten)} executed notebooks their cached outputs", flush=True)
        return 0
    pending = []
    for page in pages:
        if page.config.execution_mode != "cache" or is_excluded(page):
            continue
        try:
            cache.match_cache_notebook(page.notebook)
        except KeyError:
            pending.append(page)
    jobs = max(1, min(args.jobs, len(pending)))
    print(
        f"{len(pages)} notebook pages, {len(pages) - len(pending)} cached; "
        f"running {len(pending)} alone, {jobs} at a time, into {cache_path}",
        flush=True,
    )
    # The kernels get this environment: a notebook alone has no extra import path.
    os.environ.pop("PYTHONPATH", None)
    generated = {page.resolve(): notebook for page, notebook in chapter_notebooks(source).items()}
    for page in pending:
        if page.path.resolve() not in generated:
            name = page.path.relative_to(source).as_posix()
            print(
                f"{name} is a notebook page, but scripts/sync_chapter_notebooks.py makes no "
                "notebook of it (is its front matter jupytext's, format_name: myst?)",
                file=sys.stderr,
            )
            return 1
    chapters = {page.path: generated[page.path.resolve()] for page in pending}

    start = time.perf_counter()
    failed = []
    report = {}
    for page, result in run_pages(pending, chapters, jobs, source, md_config, nb_config):
        name = page.path.relative_to(source).as_posix()
        report[name] = {"seconds": round(result.time, 1), "error": result.exc_string}
        record = cache.add_nb_to_project(str(page.path), read_data=page.read_fmt)
        NbProjectRecord.remove_tracebacks([record.pk], cache.db)
        if result.err is not None:
            failed.append(name)
            NbProjectRecord.set_traceback(record.uri, result.exc_string, cache.db)
            message = f"{name}: executing the notebook alone failed: {type(result.err).__name__}"
            if page.config.execution_show_tb:
                message += f"\n{result.exc_string}"
            print(message, file=sys.stderr, flush=True)
            continue
        cache.cache_notebook_bundle(
            CacheBundleIn(result.nb, record.uri, data={"execution_seconds": result.time}),
            check_validity=False,
            overwrite=True,
        )
        print(f"{name}: executed alone in {result.time:.1f} s and cached", flush=True)
    print(f"ran {len(pending)} notebook pages in {time.perf_counter() - start:.1f} s", flush=True)
    if args.report:
        args.report.write_text(json.dumps(report, indent=1), encoding="utf-8")
    if failed:
        print(
            f"not cached, the build runs them again and reports them: {', '.join(failed)}\n"
            "A chapter that the build then runs without error still fails here: its notebook "
            "(notebooks/) does not run alone.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
