"""Include each script and stylesheet once per page.

Some extensions that Jupyter Book loads register their inline scripts twice (sphinx-thebe's
``const THEBE_JS_URL = ...``, sphinx-togglebutton's selector), once with no file name and once
with an empty one, so Sphinx does not see the duplicate. Declaring the same ``const`` twice is a
JavaScript error on every page; this removes the second copy.
"""

from sphinx.application import Sphinx


def _key(asset) -> tuple:
    attributes = getattr(asset, "attributes", {}) or {}
    return (getattr(asset, "filename", None) or "", tuple(sorted(attributes.items())))


def unique(assets) -> list:
    """``assets`` without repeats, in their first order."""
    seen, kept = set(), []
    for asset in assets:
        if _key(asset) not in seen:
            seen.add(_key(asset))
            kept.append(asset)
    return kept


def drop_duplicate_assets(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Keep each of the page's scripts and stylesheets once."""
    for name in ("script_files", "css_files"):
        if name in context:
            context[name] = unique(context[name])


def setup(app: Sphinx) -> dict:
    """Register the extension with Sphinx."""
    app.connect("html-page-context", drop_duplicate_assets, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
