"""Point a chapter's launch buttons (Colab, Binder, JupyterHub) at its generated notebook.

sphinx-book-theme links the launch buttons to the page's source, ``book/<chapter>.md``. Colab opens
only ``.ipynb`` files, so the chapters are also committed as notebooks in ``notebooks/``, generated
from the Markdown sources by ``scripts/sync_chapter_notebooks.py``. This extension rewrites the
buttons' targets to those notebooks, after the theme has built them.

It also adds the role ``{colab}`text <path>```: a link that opens the repository's notebook at
``path`` (relative to the repository root, e.g. an exercise) in Colab, built from the same
``repository`` settings of ``_config.yml`` as the launch buttons. A path that is not a notebook
of the repository is a build warning (an error in the course's build).
"""

import re
from pathlib import Path

from docutils import nodes
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


COLAB = "https://colab.research.google.com/github/"


def colab_url(repository_url: str, branch: str, path: str) -> str:
    """Colab's address of the notebook ``path`` of a GitHub repository at ``branch``."""
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)/?", repository_url)
    if match is None:
        raise ExtensionError(f"repository url {repository_url!r} is not a GitHub repository")
    return f"{COLAB}{match.group(1)}/{match.group(2)}/blob/{branch}/{path}"


def colab_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{colab}`label <path>```: open the repository's notebook ``path`` in Colab."""
    match = re.fullmatch(r"(.*?)\s*<([^<>]+)>", text, flags=re.S)
    label, path = (match.group(1), match.group(2)) if match else (text, text)
    env = inliner.document.settings.env
    theme = env.config.html_theme_options
    if not path.endswith(".ipynb") or not Path(env.srcdir, path).is_file():
        message = inliner.reporter.warning(
            f"{{colab}} {path!r} is not a notebook of the repository", line=lineno
        )
        return [nodes.problematic(rawtext, rawtext)], [message]
    url = colab_url(theme["repository_url"], theme.get("repository_branch", "main"), path)
    return [nodes.reference(rawtext, label, refuri=url)], []


def setup(app: Sphinx) -> dict:
    """Register the extension with Sphinx."""
    # After sphinx-book-theme's own handler (default priority 500) has added the buttons.
    app.connect("html-page-context", retarget_launch_buttons, priority=900)
    app.add_role("colab", colab_role)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
