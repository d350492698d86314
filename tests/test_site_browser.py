"""The built website works in a real browser, with no network: headless Chromium via Playwright.

The clean build of site_fixtures is served on 127.0.0.1 by a thread running http.server. Each
page must load with no failed request, no request leaving 127.0.0.1 and no console error; its math
must be typeset by the local MathJax, its images must load and its code outputs must show. A
screenshot of each page is written to _build/test-site/_build/screenshots/. The site search must
find a Chinese and an English term.
"""

import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from headless_chromium import CHROMIUM, CHROMIUM_ARGS
from site_fixtures import SiteBuild, clean_site_build, notebook_entries, toc_entries

TIMEOUT_MS = 30_000

pytestmark = pytest.mark.slow


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def site() -> SiteBuild:
    site = clean_site_build()
    if site.returncode != 0:
        pytest.fail(f"the site build failed:\n{site.failure_report()}")
    return site


@pytest.fixture(scope="module")
def base_url(site):
    """http://127.0.0.1:<free port>/ serving the built HTML, for the duration of the module."""
    handler = functools.partial(QuietHandler, directory=str(site.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: bash scripts/install-debian-packages.sh installs it")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class PageVisit:
    """A page opened in a fresh browser context, with every request and console error recorded."""

    def __init__(self, browser, base_url: str, path: str):
        self.context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        self.page.on("response", self._record_http_error)
        self.page.on("console", self._record_console_error)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.goto(base_url + path, wait_until="networkidle")

    def _record_http_error(self, response):
        if response.status >= 400:
            self.failed.append(f"{response.url} (HTTP {response.status})")

    def _record_console_error(self, message):
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, base_url):
    visits = []

    def open_page(path: str) -> PageVisit:
        visits.append(PageVisit(browser, base_url, path))
        return visits[-1]

    yield open_page
    for page_visit in visits:
        page_visit.close()


def wait_for_mathjax(page) -> None:
    """Wait until MathJax has finished typesetting the page (or there is nothing to typeset)."""
    page.wait_for_function(
        "() => !document.querySelector('.math') || (window.MathJax && MathJax.startup"
        " && MathJax.startup.promise)"
    )
    page.evaluate("async () => { if (window.MathJax?.startup) await MathJax.startup.promise; }")


@pytest.mark.parametrize("entry", toc_entries())
def test_page_renders_offline(visit, base_url, site, entry):
    opened = visit(f"{entry}.html")
    page = opened.page
    wait_for_mathjax(page)
    # Scroll through the page so that anything loaded on demand is requested too.
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_load_state("networkidle")

    outside = [url for url in opened.requests if not url.startswith((base_url, "data:", "blob:"))]
    assert not outside, f"requests outside the site: {outside}"
    assert not opened.failed, f"failed requests: {opened.failed}"
    assert not opened.errors, f"errors: {opened.errors}"

    math = page.evaluate(
        "() => { const m = [...document.querySelectorAll('.math')];"
        " return {total: m.length, typeset: m.filter(e => e.querySelector('mjx-container')).length,"
        " errors: document.querySelectorAll('mjx-merror').length}; }"
    )
    assert math["typeset"] == math["total"], f"math left as TeX: {math}"
    assert math["errors"] == 0, f"TeX errors in MathJax: {math}"

    broken = page.evaluate(
        "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
        ".map(i => i.currentSrc || i.src)"
    )
    assert not broken, f"images that did not load: {broken}"

    if entry in notebook_entries():
        shown = page.locator("div.cell_output").evaluate_all(
            "outputs => outputs.filter(o => o.offsetHeight > 0 && o.innerText.trim() !== ''"
            " || o.querySelector('img')).length"
        )
        assert shown > 0, "no code output is shown"

    # Code fits the content column at this 1280-pixel window: no shown block of code (cell
    # inputs and the text's code blocks; not outputs) scrolls sideways.
    too_wide = page.evaluate(
        "() => [...document.querySelectorAll('div.cell_input pre, div.highlight pre')]"
        ".filter(e => !e.closest('.cell_output') && e.innerText.trim() !== '')"
        ".filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)"
        ".map(e => e.innerText.split('\\n').reduce((a, b) => (b.length > a.length ? b : a)))"
    )
    assert not too_wide, f"code blocks that scroll sideways (longest line of each): {too_wide}"

    site.screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(site.screenshots / f"{Path(entry).name}.png"), full_page=True)


@pytest.mark.parametrize(
    ("query", "expected"), [("遗忘门", "book/lstm.html"), ("LSTM", "book/lstm.html")]
)
def test_search_page_finds_chinese_and_english_terms(visit, query, expected):
    opened = visit(f"search.html?q={quote(query)}")
    results = opened.page.locator("#search-results ul.search li a")
    results.first.wait_for(state="attached")
    hrefs = results.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert any(href.split("#")[0].endswith(expected) for href in hrefs), hrefs
    assert not opened.failed, opened.failed
    assert not opened.errors, opened.errors
