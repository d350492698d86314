"""Generate the Jupyter notebooks of the chapters (notebooks/*.ipynb) from book/*.md.

The chapters are written as MyST Markdown notebooks. Colab opens only .ipynb files, so every
notebook page listed in _toc.yml is also committed as a notebook in notebooks/, which the site's
Colab and Binder buttons open. Those files are generated, never edited by hand:

    python scripts/sync_chapter_notebooks.py          # rewrite notebooks/ from book/
    python scripts/sync_chapter_notebooks.py --check  # exit 1 if notebooks/ is stale

A generated notebook differs from its chapter only where Jupyter and Colab need it to. MyST-only
syntax that they would show as raw text is simplified (labels, roles); links to other chapters
lead to their notebooks, and exercise downloads to the files in the repository. A first code cell
installs the course's reference package when it is missing (Colab has TensorFlow but not
rnn_ref; at build time and on Binder it is installed, so the cell does nothing). Outputs are left
out: the website shows them, and running the notebook recreates them.

The chapters share modules of their own (``book/*.py``: the set-up, the diagrams' pieces, the
language model's corpus). A notebook carries a copy of each module its chapter imports, in a
code cell before the first cell that imports it, so that it runs alone: nothing to upload, no
checkout. The corpus module's copy carries the pages it reads (``EMBEDDED_PAGES``).
"""

import argparse
import importlib.util
import posixpath
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python scripts/sync_chapter_notebooks.py"

LABEL_LINE = re.compile(r"^\([\w:.-]+\)=[ \t]*\n?", re.MULTILINE)
# {role}`title <target>` or {role}`text`
ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<body>[^`]*)`")
TITLED_TARGET = re.compile(r"^(?P<title>.*\S)\s*<(?P<target>[^<>]+)>$", re.DOTALL)
IMPORTS_RNN_REF = re.compile(r"^\s*(import|from)\s+rnn_ref\b", re.MULTILINE)
TITLE = re.compile(r"^#[ \t]+(?P<title>.+?)[ \t]*$", re.MULTILINE)
LABELLED_HEADING = re.compile(
    r"^\((?P<label>[\w:.-]+)\)=[ \t]*\n+#+[ \t]+(?P<title>.+?)[ \t]*$", re.MULTILINE
)
IMPORTED_MODULE = re.compile(
    r"^[ \t]*(?:from[ \t]+(\w+)[ \t]+import|import[ \t]+(\w+))", re.MULTILINE
)
# The corpus module's line that its copy in a notebook replaces with the pages themselves.
CORPUS_MODULE = "course_corpus"
EMBEDDED_PAGES_LINE = "EMBEDDED_PAGES: str | None = None\n"
# What module_source puts in its place: the pages, after a comment that says what they are.
CARRIED_PAGES = re.compile(
    r"^# Here: the course's .*?^EMBEDDED_PAGES: str \| None = \(\n.*?^\)\n",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Target:
    """Where a {doc} or {ref} link of the website points, seen from the notebooks."""

    title: str
    notebook: str | None  # the generated notebook's file name, when the page has one


def toc_pages(root: Path = ROOT) -> list[Path]:
    """Source files of the pages listed in _toc.yml, in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    entries = [toc["root"]]
    # A book's chapters come in parts, or straight under the root.
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        entries += [chapter["file"] for chapter in part.get("chapters", [])]
    pages = []
    for entry in entries:
        candidates = [root / f"{entry}{suffix}" for suffix in (".md", ".ipynb")]
        existing = [path for path in candidates if path.is_file()]
        if not existing:
            raise FileNotFoundError(f"_toc.yml lists {entry!r} but neither .md nor .ipynb exists")
        pages.append(existing[0])
    return pages


def repository(root: Path = ROOT) -> tuple[str, str]:
    """The course repository's URL and branch, from _config.yml."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    return config["repository"]["url"].rstrip("/"), config["repository"]["branch"]


def link_targets(pages: dict[Path, bool]) -> dict[str, Target]:
    """Titles of the pages (``doc:<name>``) and labelled headings (``ref:<label>``).

    ``pages`` maps each page to whether it is a notebook (and so has a generated notebook).
    """
    targets = {}
    for page, is_notebook in pages.items():
        text = page.read_text(encoding="utf-8")
        notebook = f"{page.stem}.ipynb" if is_notebook else None
        title = TITLE.search(text)
        targets[f"doc:{page.stem}"] = Target(title["title"] if title else page.stem, notebook)
        for heading in LABELLED_HEADING.finditer(text):
            targets[f"ref:{heading['label']}"] = Target(heading["title"], notebook)
    return targets


def jupyter_markdown(
    source: str,
    targets: dict[str, Target] | None = None,
    file_url: Callable[[str], str] | None = None,
) -> str:
    """Simplify MyST-only inline syntax that Jupyter and Colab would show verbatim.

    Links to other pages ({doc}, {ref}) point to their generated notebooks when ``targets``
    (see :func:`link_targets`) knows them; other roles keep their text. Downloads ({download})
    of repository files become links to ``file_url(target)``, the file in the repository (on
    Colab a relative link leads nowhere), or stay relative without ``file_url``.
    """
    targets = targets or {}
    source = LABEL_LINE.sub("", source)

    def replace(match: re.Match) -> str:
        role, body = match["role"], match["body"]
        titled = TITLED_TARGET.match(body)
        target = titled["target"] if titled else body
        if role == "math":
            return f"${body}$"
        if role == "download":
            if file_url and "://" not in target:
                target = file_url(target)
            return f"[{titled['title'] if titled else body}]({target})"
        if role in ("doc", "ref"):
            known = targets.get(f"doc:{Path(target).name}" if role == "doc" else f"ref:{target}")
            title = titled["title"] if titled else known.title if known else body
            return f"[{title}]({known.notebook})" if known and known.notebook else title
        return titled["title"] if titled else body

    return ROLE.sub(replace, source)


def install_cell(repo_url: str, branch: str) -> nbformat.NotebookNode:
    """The code cell that installs rnn_ref where it is missing (Colab)."""
    source = (
        "# Colab and other hosted Jupyter services lack the course's reference package rnn_ref:\n"
        "# install it from the course repository when it is missing (no-op where installed).\n"
        "import importlib.util\n"
        "\n"
        'if importlib.util.find_spec("rnn_ref") is None:\n'
        f'    %pip install --quiet "rnn-ref @ git+{repo_url}@{branch}"'
    )
    return nbformat.v4.new_code_cell(source)


def local_modules(folder: Path) -> dict[str, Path]:
    """The chapters' own modules (``book/*.py``) by module name."""
    return {path.stem: path for path in sorted(folder.glob("*.py"))}


def imported_modules(source: str, modules: dict[str, Path]) -> list[str]:
    """The modules of ``modules`` that ``source`` imports, each after those it imports itself."""
    found: list[str] = []

    def visit(text: str, seen: tuple[str, ...]) -> None:
        for match in IMPORTED_MODULE.finditer(text):
            name = match[1] or match[2]
            if name in modules and name not in found and name not in seen:
                visit(modules[name].read_text(encoding="utf-8"), (*seen, name))
                found.append(name)

    visit(source, ())
    return found


def load_module(path: Path) -> types.ModuleType:
    """The module at ``path``, loaded without putting its folder on ``sys.path``."""
    spec = importlib.util.spec_from_file_location(f"_chapter_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def module_source(path: Path, page: Path) -> str:
    """The source a notebook carries of the module ``path``; the corpus with the pages it reads.

    The corpus is every page beside the chapter (``book/*.md``) except the chapter itself.
    """
    source = path.read_text(encoding="utf-8")
    if path.stem != CORPUS_MODULE:
        return source
    if source.count(EMBEDDED_PAGES_LINE) != 1:
        raise ValueError(f"{path} must hold the line {EMBEDDED_PAGES_LINE.strip()!r} once")
    pages = {
        other.name: other.read_text(encoding="utf-8")
        for other in sorted(page.parent.glob("*.md"))
        if other != page
    }
    packed = load_module(path).pack(pages)
    lines = "\n".join(f'    "{packed[i : i + 88]}"' for i in range(0, len(packed), 88))
    carried = f"# Here: the course's {len(pages)} other pages, as this notebook was generated.\n"
    assignment = f"EMBEDDED_PAGES: str | None = (\n{lines}\n)\n"
    return source.replace(EMBEDDED_PAGES_LINE, carried + assignment)


def module_cell(name: str, source: str, origin: str) -> nbformat.NotebookNode:
    """A code cell that defines the module ``name`` from ``source``, as ``import`` would."""
    if "'''" in source or source.rstrip("\n").endswith("\\"):
        raise ValueError(f"{origin} cannot be carried in a raw '''-string")
    cell = (
        f"# A copy of the course's module {name} ({origin} in the course repository),\n"
        "# so that this notebook runs on its own: defined as if imported from that file.\n"
        "import sys\n"
        "import types\n"
        "\n"
        f'{name} = sys.modules["{name}"] = types.ModuleType("{name}")\n'
        f'{name}.__file__ = "{Path(origin).name}"\n'
        f"exec(compile(r'''\n{source}'''[1:], {name}.__file__, \"exec\"), vars({name}))"
    )
    return nbformat.v4.new_code_cell(cell)


def chapter_notebook(
    page: Path, root: Path = ROOT, targets: dict[str, Target] | None = None
) -> nbformat.NotebookNode | None:
    """The notebook generated from one page, or None when the page is not a notebook."""
    text_notebook = jupytext.read(page)
    kernelspec = text_notebook.metadata.get("kernelspec")
    if not kernelspec:
        return None
    source = page.relative_to(root).as_posix()
    notice = nbformat.v4.new_markdown_cell(
        f"本笔记本由课程网站的章节 `{source}` 自动生成，请勿直接编辑；"
        f"修改章节后运行 `{COMMAND}` 重新生成。"
    )
    repo_url, branch = repository(root)

    def file_url(target: str) -> str:
        """A download written relative to the page, as the file's URL in the repository."""
        path = posixpath.normpath(posixpath.join(posixpath.dirname(source), target))
        return f"{repo_url}/blob/{branch}/{path}"

    cells = [notice]
    for cell in text_notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = jupyter_markdown(cell.source, targets, file_url)
            if not cell.source.strip():
                continue
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)

    # Each module of the chapter's own goes before the first cell that imports it (or a module
    # that imports it).
    modules = local_modules(page.parent)
    carried: set[str] = set()
    with_modules = []
    for cell in cells:
        if cell.cell_type == "code":
            for name in imported_modules(cell.source, modules):
                if name not in carried:
                    carried.add(name)
                    origin = modules[name].relative_to(root).as_posix()
                    source = module_source(modules[name], page)
                    with_modules.append(module_cell(name, source, origin))
        with_modules.append(cell)
    cells = with_modules

    if any(IMPORTS_RNN_REF.search(c.source) for c in cells if c.cell_type == "code"):
        first_code = next(i for i, c in enumerate(cells) if c.cell_type == "code")
        cells.insert(first_code, install_cell(repo_url, branch))

    notebook = nbformat.v4.new_notebook(
        cells=cells,
        metadata={"kernelspec": dict(kernelspec), "language_info": {"name": "python"}},
    )
    # Stable cell ids keep the generated files identical from one run to the next.
    for index, cell in enumerate(notebook.cells):
        cell.id = f"{page.stem}-{index:03d}"
        cell.metadata.pop("jupytext", None)
    nbformat.validate(notebook)
    return notebook


def chapter_notebooks(root: Path = ROOT) -> dict[Path, nbformat.NotebookNode]:
    """The notebook generated from each notebook page of _toc.yml, by the page's source file."""
    pages = {page: bool(jupytext.read(page).metadata.get("kernelspec")) for page in toc_pages(root)}
    targets = link_targets(pages)
    generated = {}
    for page, is_notebook in pages.items():
        if is_notebook:
            notebook = chapter_notebook(page, root, targets)
            assert notebook is not None
            generated[page] = notebook
    return generated


def expected_notebooks(root: Path = ROOT) -> dict[Path, str]:
    """Every generated notebook's path and exact file content."""
    return {
        root / "notebooks" / f"{page.stem}.ipynb": nbformat.writes(notebook) + "\n"
        for page, notebook in chapter_notebooks(root).items()
    }


def without_carried_pages(content: str) -> str:
    """A generated notebook's text with the pages its corpus module carries left out.

    The corpus is a snapshot of the other pages: a page edited since the notebook was generated
    leaves the notebook as runnable as before, so it does not make the notebook stale.
    """
    notebook = nbformat.reads(content, as_version=4)
    for cell in notebook.cells:
        cell.source = CARRIED_PAGES.sub("EMBEDDED_PAGES = ...\n", cell.source)
    return nbformat.writes(notebook)


def stale_notebooks(root: Path = ROOT) -> list[str]:
    """Repository paths in notebooks/ that are missing, outdated or no longer generated.

    A notebook whose only difference is the snapshot of pages its corpus carries is not stale
    (see :func:`without_carried_pages`); :func:`sync` refreshes that snapshot all the same.
    """
    expected = expected_notebooks(root)
    present = set((root / "notebooks").glob("*.ipynb"))
    stale = [
        path
        for path, content in expected.items()
        if not path.is_file()
        or without_carried_pages(path.read_text(encoding="utf-8")) != without_carried_pages(content)
    ]
    stale += sorted(present - set(expected))
    return sorted(path.relative_to(root).as_posix() for path in stale)


def sync(root: Path = ROOT) -> list[str]:
    """Rewrite notebooks/ from the pages; return the repository paths that changed."""
    expected = expected_notebooks(root)
    (root / "notebooks").mkdir(exist_ok=True)
    changed = []
    for path, content in expected.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            changed.append(path)
    for path in set((root / "notebooks").glob("*.ipynb")) - set(expected):
        path.unlink()
        changed.append(path)
    return sorted(path.relative_to(root).as_posix() for path in changed)


def main(argv: list[str] | None = None) -> int:
    """Regenerate notebooks/, or with ``--check`` only report stale notebooks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report stale notebooks; exit 1 if any"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_notebooks()
        if stale:
            print("Stale chapter notebooks: " + ", ".join(stale), file=sys.stderr)
            print(f"Regenerate them with: {COMMAND}", file=sys.stderr)
            return 1
        print("Chapter notebooks are up to date.")
        return 0
    for path in sync():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
