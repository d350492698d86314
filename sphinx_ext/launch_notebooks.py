"""Point a chapter's launch buttons (Colab, Binder, JupyterHub) at its generated notebook.

sphinx-book-theme links the launch buttons to the page's source, ``book/<chapter>.md``. Colab opens
only ``.ipynb`` files, so the chapters are also committed as notebooks in ``notebooks/``, generated
from the Markdown sources by ``scripts/sync_chapter_notebooks.py``. This extension rewrites the
buttons' targets to those notebooks, after the theme has built them.
"""

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

NOTEBOOK_DIR = "notebooks"
REGENERATE = "python scripts/sync_chapter_notebooks.py"

logger = logging.getLogger(__name__)


def generated_notebook(pagename: str) -> str:
    """Repository path of the notebook generated from the page ``pagename`` (``book/lstm``)."""
    return f"{NOTEBOOK_DIR}/{Path(pagename).name}.ipynb"


def retarget_launch_buttons(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Point the page's Colab and Binder buttons at its generated ``.ipynb``."""
    groups = [g for g in context.get("header_buttons", []) if g.get("label") == "launch-buttons"]
    if not groups:
        return
    source = Path(app.env.doc2path(pagename)).relative_to(app.srcdir).as_posix()
    notebook = generated_notebook(pagename)
    if not Path(app.srcdir, notebook).is_file():
        logger.warning(
            "%s has launch buttons but no generated notebook %s; run `%s`",
            source,
            notebook,
            REGENERATE,
            location=pagename,
        )
        return
    for group in groups:
        for button in group["buttons"]:
            if button.get("type") != "link":
                continue
            url = button["url"]
            if not url.endswith(source):
                # The theme changed how it builds these links: fail loudly, not with dead links.
                raise ExtensionError(f"launch URL {url!r} does not end with the source {source!r}")
            button["url"] = url[: -len(source)] + notebook


def setup(app: Sphinx) -> dict:
    """Register the extension with Sphinx."""
    # After sphinx-book-theme's own handler (default priority 500) has added the buttons.
    app.connect("html-page-context", retarget_launch_buttons, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
