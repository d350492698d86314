"""The course website builds cleanly, offline, and publishes exactly what it should.

One clean build (site_fixtures.clean_site_build: fresh output and cache, every notebook
executed, warnings as errors) is inspected: pages, executed outputs, links and assets, search
index, API reference, launch buttons. The fast tests at the end check the generated chapter
notebooks and the search dictionary without building.
"""

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from chapter_notebook_sync import NOTEBOOK_HEADER
from site_fixtures import (
    ROOT,
    SiteBuild,
    build_site,
    clean_site_build,
    execute_chapters,
    notebook_entries,
    read_notebook,
    toc_entries,
)

import rnn_ref

# Log lines TensorFlow (with its oneDNN and CUDA back ends) writes at import or first use.
FRAMEWORK_NOISE = re.compile(
    r"oneDNN custom operations|tensorflow/core/|external/local_(?:xla|tsl)/|"
    r"absl::InitializeLog|\b[IWEF]\d{4} \d\d:\d\d:\d\d|This TensorFlow binary is optimized|"
    r"Could not find cuda drivers|Unable to register cu(?:DNN|BLAS|FFT)|TF-TRT Warning|"
    r"cuda_(?:dnn|blas|fft|executor|driver)\.cc|computation_placer"
)
# Tags and attributes through which a page makes the browser load something.
LOADING_ATTRIBUTES = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "iframe": ("src",),
    "video": ("src", "poster"),
    "audio": ("src",),
    "embed": ("src",),
    "object": ("data",),
}
SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


class Tags(HTMLParser):
    """Every start tag of a page, as (tag, attributes)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {name: value or "" for name, value in attrs}))


def page_tags(path: Path) -> list[tuple[str, dict[str, str]]]:
    parser = Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.tags


def is_external(url: str) -> bool:
    parts = urlsplit(url.strip())
    return bool(parts.scheme and parts.scheme not in ("data", "blob")) or url.startswith("//")


def html_pages(site: SiteBuild) -> list[Path]:
    """The site's pages (the theme's HTML templates copied into _static are not pages)."""
    return sorted(p for p in site.html.rglob("*.html") if "_static" not in p.parts)


@pytest.fixture(scope="module")
def site() -> SiteBuild:
    return clean_site_build()


@pytest.fixture(scope="module")
def built(site) -> SiteBuild:
    """The build, only if it succeeded: the tests below inspect a complete site."""
    if site.returncode != 0:
        pytest.fail(f"the site build failed:\n{site.failure_report()}")
    return site


@pytest.mark.slow
def test_clean_build_passes_with_warnings_as_errors(site):
    assert site.returncode == 0, f"the build failed:\n{site.failure_report()}"
    assert not site.problems(), "\n".join(site.problems())


@pytest.mark.slow
def test_the_build_takes_every_chapter_from_the_cache_filled_beforehand(site):
    """scripts/execute_chapters.py ran the chapters; the build itself executes nothing."""
    assert site.execution is not None
    assert site.after_build is not None
    assert site.execution.returncode == 0, site.execution.log
    for entry in notebook_entries():
        assert f"{entry}.md: executed alone in" in site.execution.log, entry
        assert f"{ROOT / entry}.md: Using cached notebook" in site.log, entry
    assert "Executing notebook" not in site.log
    assert site.after_build.returncode == 0, site.after_build.log


@pytest.mark.slow
def test_every_toc_page_has_html(built):
    missing = [e for e in toc_entries() if not (built.html / f"{e}.html").is_file()]
    assert not missing, f"pages in _toc.yml without HTML: {missing}"
    index = (built.html / "index.html").read_text(encoding="utf-8")
    assert toc_entries()[0] + ".html" in index, "index.html does not lead to the root page"


@pytest.mark.slow
def test_every_notebook_page_was_executed_without_errors(built):
    for entry in notebook_entries():
        notebook = read_notebook(built.executed / f"{entry}.ipynb")
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code, f"{entry} has no code cells"
        for index, cell in enumerate(code):
            assert cell.execution_count is not None, f"{entry}: code cell {index} did not run"
            tags = cell.metadata.get("tags", [])
            errors = [o for o in cell.outputs if o.output_type == "error"]
            if "raises-exception" in tags:
                assert errors, f"{entry}: cell {index} is tagged raises-exception but did not raise"
            else:
                assert not errors, f"{entry}: cell {index} raised {errors[0].get('ename')}"


@pytest.mark.slow
def test_pages_show_no_traceback_outside_tagged_cells(built):
    cell = re.compile(r'<div class="cell( [^"]*)?">')
    for entry in notebook_entries():
        html = (built.html / f"{entry}.html").read_text(encoding="utf-8")
        for match in cell.finditer(html):
            if "tag_raises-exception" in (match.group(1) or ""):
                continue
            # The cell's HTML runs until the next cell or the end of the article.
            end = html.find('<div class="cell', match.end())
            body = html[match.end() : end if end != -1 else len(html)]
            assert "Traceback (most recent call last)" not in body, f"{entry} shows a traceback"
            assert "output traceback" not in body, f"{entry} shows an error output"


@pytest.mark.slow
def test_no_framework_noise_in_outputs(built):
    for entry in notebook_entries():
        notebook = read_notebook(built.executed / f"{entry}.ipynb")
        for cell in notebook.cells:
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                text = (
                    output.get("text", "") + data.get("text/plain", "") + data.get("text/html", "")
                )
                assert not FRAMEWORK_NOISE.search(text), f"{entry}: framework noise: {text[:300]!r}"
        html = (built.html / f"{entry}.html").read_text(encoding="utf-8")
        outputs = re.findall(r'<div class="cell_output.*?</div>\s*</div>', html, flags=re.S)
        noisy = [o for o in outputs if FRAMEWORK_NOISE.search(o)]
        assert not noisy, f"{entry}: framework noise shown on the page: {noisy[0][:300]!r}"


@pytest.mark.slow
def test_no_page_loads_anything_from_outside_the_site(built):
    for page in html_pages(built):
        for tag, attrs in page_tags(page):
            for attribute in LOADING_ATTRIBUTES.get(tag, ()):
                for url in re.split(r",\s*", attrs.get(attribute, "")):
                    url = url.split(" ")[0]
                    assert not is_external(url), f"{page.relative_to(built.html)}: <{tag}> {url}"
    for stylesheet in built.html.rglob("*.css"):
        css = stylesheet.read_text(encoding="utf-8", errors="replace")
        external = re.findall(r"(?:url\(\s*['\"]?|@import\s+['\"])((?:https?:)?//[^'\")]+)", css)
        assert not external, f"{stylesheet.relative_to(built.html)} loads {external}"


@pytest.mark.slow
def test_math_is_served_by_the_site(built):
    mathjax = built.html / "_static" / "mathjax"
    assert (mathjax / "tex-chtml.js").is_file()
    assert (mathjax / "LICENSE").is_file()
    assert list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    # Jupyter Book adds every .js file under a static folder to every page; MathJax must not be.
    intro = (built.html / f"{toc_entries()[0]}.html").read_text(encoding="utf-8")
    assert "mathjax/input/tex/extensions" not in intro
    for page in ("book/glossary.html", "book/api.html"):
        scripts = [a.get("src", "") for t, a in page_tags(built.html / page) if t == "script"]
        assert any("_static/mathjax/tex-chtml.js" in src for src in scripts), page


@pytest.mark.slow
def test_every_internal_link_and_download_resolves(built):
    for page in html_pages(built):
        for tag, attrs in page_tags(page):
            url = attrs.get("href") if tag in ("a", "link") else attrs.get("src")
            if not url or is_external(url) or url.startswith(("#", "mailto:", "javascript:")):
                continue
            path = unquote(urlsplit(url).path)
            if not path:
                continue
            target = (page.parent / path).resolve()
            assert target.exists(), f"{page.relative_to(built.html)} links to missing {url}"


@pytest.mark.slow
def test_exercises_are_offered_for_download(built):
    downloads = [d for d in (built.html / "_downloads").rglob("*") if d.is_file()]
    for exercise in sorted((ROOT / "exercises").glob("*/*")):
        if exercise.name.startswith(".") or not exercise.is_file():
            continue
        published = [d for d in downloads if d.read_bytes() == exercise.read_bytes()]
        assert published, f"{exercise.relative_to(ROOT)} is not offered for download"


@pytest.mark.slow
def test_only_toc_pages_are_built_and_solutions_never_published(built):
    built_pages = {p.relative_to(built.html).with_suffix("").as_posix() for p in html_pages(built)}
    extra = built_pages - set(toc_entries()) - {"index", "genindex", "search", "py-modindex"}
    assert not extra, f"pages built that are not in _toc.yml: {sorted(extra)}"
    for path in built.html.rglob("*"):
        relative = path.relative_to(built.html).as_posix()
        assert "solutions" not in relative.split("/"), f"published: {relative}"
        if path.suffix == ".ipynb":
            text = path.read_text(encoding="utf-8")
            leaked = [m for m in SOLUTION_MARKERS if m in text]
            assert not leaked, f"{relative} contains nbgrader solution markers {leaked}"


@pytest.mark.slow
def test_chapters_download_as_executed_notebooks(built):
    for entry in notebook_entries():
        page = built.html / f"{entry}.html"
        hrefs = [a.get("href", "") for t, a in page_tags(page) if t == "a"]
        assert f"../_sources/{entry}.ipynb" in hrefs, f"{entry}: no .ipynb download button"
        notebook = read_notebook(built.html / "_sources" / f"{entry}.ipynb")
        assert any(c.get("outputs") for c in notebook.cells), f"{entry}.ipynb has no outputs"


@pytest.mark.slow
def test_launch_buttons_open_the_generated_notebooks(built):
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    repo = urlsplit(config["repository"]["url"]).path.strip("/")
    branch = config["repository"]["branch"]
    for entry in notebook_entries():
        notebook = f"notebooks/{Path(entry).name}.ipynb"
        assert (ROOT / notebook).is_file(), notebook
        hrefs = [a.get("href", "") for t, a in page_tags(built.html / f"{entry}.html") if t == "a"]
        # The launch button; a chapter's text may also open its exercise (checked below).
        colab = [h for h in hrefs if h.startswith(f"{COLAB}{repo}/blob/{branch}/notebooks/")]
        binder = [h for h in hrefs if h.startswith("https://mybinder.org/")]
        assert colab == [f"{COLAB}{repo}/blob/{branch}/{notebook}"]
        assert binder == [f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=lab/tree/{notebook}"]


COLAB = "https://colab.research.google.com/github/"


@pytest.mark.slow
def test_every_colab_link_opens_a_notebook_of_the_repository(built):
    """Launch buttons and the learners' page: each opens a notebook this checkout holds, at the
    repository and branch of _config.yml, and each exercise can be opened from the site."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    repo = urlsplit(config["repository"]["url"]).path.strip("/")
    prefix = f"{COLAB}{repo}/blob/{config['repository']['branch']}/"
    opened = set()
    for page in html_pages(built):
        for tag, attrs in page_tags(page):
            href = attrs.get("href", "")
            if tag != "a" or not href.startswith("https://colab.research.google.com/"):
                continue
            assert href.startswith(prefix), f"{page.relative_to(built.html)}: {href}"
            path = href.removeprefix(prefix)
            assert path.endswith(".ipynb"), href
            assert (ROOT / path).is_file(), href
            opened.add(path)
    exercises = {p.relative_to(ROOT).as_posix() for p in (ROOT / "exercises").glob("*/*.ipynb")}
    assert exercises <= opened, f"exercises no page opens in Colab: {exercises - opened}"


def search_index(site: SiteBuild) -> dict:
    text = (site.html / "searchindex.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("(") + 1 : text.rindex(")")])


def pages_found(index: dict, term: str) -> set[str]:
    """Docnames whose text or titles contain the index term ``term`` (one word, as stored)."""
    found = set()
    for field in ("terms", "titleterms"):
        hits = index[field].get(term, [])
        for hit in [hits] if isinstance(hits, int) else hits:
            found.add(index["docnames"][hit])
    return found


@pytest.mark.slow
@pytest.mark.parametrize(("term", "page"), [("遗忘门", "book/lstm"), ("lstm", "book/lstm")])
def test_search_index_has_chinese_and_english_terms(built, term, page):
    index = search_index(built)
    assert page in pages_found(index, term), f"searching {term!r} does not find {page}"
    assert "book/glossary" in pages_found(index, term)


@pytest.mark.slow
def test_api_reference_documents_every_public_name(built):
    html = (built.html / "book" / "api.html").read_text(encoding="utf-8")
    anchors = set(re.findall(r'id="(rnn_ref\.[\w.]+)"', html))
    documented = {anchor.rsplit(".", 1)[-1] for anchor in anchors}
    missing = sorted(set(rnn_ref.__all__) - documented)
    assert not missing, f"not in the API reference: {missing}"
    # Docstring math is rendered by MathJax, not left as reST.
    assert ":math:" not in html
    assert '<span class="math notranslate nohighlight">' in html


MYST_NOTEBOOK = NOTEBOOK_HEADER  # a page jupytext, and so the notebook sync, reads as MyST


def _small_book(root: Path, pages: dict[str, str], modules: dict[str, str] | None = None) -> Path:
    """A book of an intro and the MyST notebook ``pages`` (name -> cells), with launch buttons
    (so the theme copies each page's notebook to _sources, its download) and its own modules."""
    book = root / "book"
    book.mkdir()
    (book / "_config.yml").write_text(
        "title: Test\nonly_build_toc_files: true\n"
        "execute:\n  execute_notebooks: cache\n  timeout: 60\n  show_tb: true\n"
        "repository:\n  url: https://github.com/example/book\n  branch: main\n"
        "launch_buttons:\n  colab_url: https://colab.research.google.com\n",
        encoding="utf-8",
    )
    chapters = "".join(f"  - file: {name}\n" for name in pages)
    (book / "_toc.yml").write_text(
        f"format: jb-book\nroot: intro\nchapters:\n{chapters}", encoding="utf-8"
    )
    (book / "intro.md").write_text("# Intro\n", encoding="utf-8")
    for name, cells in pages.items():
        (book / f"{name}.md").write_text(
            f"{MYST_NOTEBOOK}# {name.title()}\n\n{cells}", encoding="utf-8"
        )
    for name, source in (modules or {}).items():
        (book / f"{name}.py").write_text(source, encoding="utf-8")
    return book


def _cell(source: str, tags: str = "") -> str:
    options = f":tags: [{tags}]\n\n" if tags else ""
    return f"```{{code-cell}} ipython3\n{options}{source}\n```\n\n"


@pytest.mark.slow
def test_a_chapter_that_raises_still_fails_the_build_with_its_traceback(tmp_path):
    """A page that raises is left out of the cache filled beforehand: the build runs it again,
    prints its traceback and fails; the other pages come from the cache, with their outputs,
    from their run alone: in an empty folder, the book's own module carried by the notebook."""
    book = _small_book(
        tmp_path,
        {
            "good": _cell("import os\nprint(os.listdir('.'), os.getcwd() != BOOK)")
            + _cell("import helper\nprint(helper.__file__, helper.ANSWER)")
            + _cell("raise KeyError('shown')", tags="raises-exception"),
            "bad": _cell("1 / 0"),
        },
        modules={"helper": "ANSWER = 42\n"},
    )
    (book / "good.md").write_text(
        (book / "good.md").read_text().replace("import os", f"BOOK = {str(book)!r}\nimport os"),
        encoding="utf-8",
    )
    output = tmp_path / "output"

    execution = execute_chapters(output, source=book)
    assert execution.returncode == 1, execution.log
    assert "good.md: executed alone in" in execution.log
    assert "bad.md: executing the notebook alone failed" in execution.log
    assert "ZeroDivisionError" in execution.log
    assert execution.runs["good.md"]["error"] is None
    assert "ZeroDivisionError" in execution.runs["bad.md"]["error"]

    site = build_site(output, source=book)
    assert site.returncode != 0, site.log_tail()
    assert f"{book / 'good.md'}: Using cached notebook" in site.log
    assert f"{book / 'bad.md'}: Executing notebook" in site.log
    assert "ZeroDivisionError" in site.log
    assert "Traceback" in site.log

    # myst-nb writes a cached page's notebook without outputs; --after-build gives them back.
    good = site.executed / "good.ipynb"
    assert not any(cell.get("outputs") for cell in read_notebook(good).cells)
    after = execute_chapters(output, "--after-build", source=book)
    assert after.returncode == 0, after.log
    for notebook in (good, site.html / "_sources" / "good.ipynb"):
        cells = [cell for cell in read_notebook(notebook).cells if cell.cell_type == "code"]
        assert [cell.source.splitlines()[0] for cell in cells] == [
            f"BOOK = {str(book)!r}",
            "import helper",
            "raise KeyError('shown')",
        ]
        folder, helper, raised = (cell.outputs for cell in cells)
        assert folder[0]["text"] == "[] True\n", notebook
        assert helper[0]["text"] == "helper.py 42\n", notebook  # the notebook's copy
        assert raised[0]["ename"] == "KeyError", notebook
        # Counted as the page's own cells, without the cells only the notebook has.
        assert [cell.execution_count for cell in cells] == [1, 2, 3], notebook
    bad = read_notebook(site.executed / "bad.ipynb")
    assert bad.cells[-1].outputs[0]["ename"] == "ZeroDivisionError"


@pytest.mark.slow
def test_a_chapter_that_runs_only_in_the_checkout_fails(tmp_path):
    """A page that reads a file beside it runs in the build (the page's folder) but not as its
    notebook alone: the run before the build says so and exits 1."""
    book = _small_book(tmp_path, {"reads": _cell("print(open('data.txt').read())")})
    (book / "data.txt").write_text("beside the page\n", encoding="utf-8")
    output = tmp_path / "output"

    execution = execute_chapters(output, source=book)
    assert execution.returncode == 1, execution.log
    assert "reads.md: executing the notebook alone failed" in execution.log
    assert "FileNotFoundError" in execution.runs["reads.md"]["error"]
    assert "does not run alone" in execution.log
    site = build_site(output, source=book)
    assert site.returncode == 0, site.failure_report()
    assert "beside the page" in (site.html / "reads.html").read_text(encoding="utf-8")


# Fast checks: no build needed.


def test_chapter_notebooks_are_in_sync():
    result = subprocess.run(
        [sys.executable, "scripts/sync_chapter_notebooks.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_search_dictionary_has_every_chinese_glossary_term():
    glossary = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    block = glossary.split("```{glossary}", 1)[1].split("```", 1)[0]
    terms = {line.strip() for line in block.splitlines() if line and not line[0].isspace()}
    chinese = {t for t in terms if re.search(r"[\u4e00-\u9fff]", t)}
    assert len(chinese) >= 20
    dictionary = (ROOT / "sphinx_ext" / "search_terms.zh.txt").read_text(encoding="utf-8")
    words = {line.split()[0] for line in dictionary.splitlines() if line.strip()}
    assert chinese <= words, f"add to sphinx_ext/search_terms.zh.txt: {sorted(chinese - words)}"


def markdown_outside_code(text: str) -> list[str]:
    """The lines of a MyST page outside its front matter and fenced blocks (code cells)."""
    if text.startswith("---\n"):
        text = text.split("\n---\n", 1)[1]
    lines, fence = [], None
    for line in text.splitlines():
        marker = re.match(r"^(`{3,}|~{3,})", line)
        if fence is None and marker:
            fence = marker.group(1)
        elif fence is not None and line.startswith(fence) and not line.strip(fence[0]).strip():
            fence = None
        elif fence is None:
            lines.append(line)
    return lines


@pytest.mark.parametrize("entry", toc_entries())
def test_each_page_has_one_label_then_one_title(entry):
    lines = [line for line in markdown_outside_code(read_page(entry)) if line.strip()]
    titles = [line for line in lines if line.startswith("# ")]
    assert len(titles) == 1, f"{entry} has {len(titles)} H1 titles: {titles}"
    assert re.fullmatch(r"\([\w-]+\)=", lines[0]), f"{entry} does not start with a label"
    assert lines[1] == titles[0], f"{entry}: the label is not right above the title"


def read_page(entry: str) -> str:
    return (ROOT / f"{entry}.md").read_text(encoding="utf-8")
