"""Make the site search find Chinese terms such as 遗忘门 as well as English ones.

Sphinx's Chinese search (``language: zh_CN``) indexes Chinese text only when jieba is installed,
and jieba cuts unknown compounds into pieces (遗忘门 -> 遗忘 / 门, and one-character words are not
indexed). The browser looks a query up as a whole word, so the course's terms are given to jieba
as a user dictionary, ``search_terms.zh.txt``, next to this file.
"""

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

TERMS = Path(__file__).with_name("search_terms.zh.txt")


def use_course_dictionary(app: Sphinx, config: Config) -> None:
    """Split the search index's Chinese with jieba and the course's terms (a Chinese site only)."""
    if not str(config.language).startswith("zh"):
        return
    try:
        import jieba  # noqa: F401  (Sphinx imports it too; checked here to fail with a reason)
    except ImportError as error:
        raise ExtensionError(
            "the Chinese site search needs jieba: pip install -r requirements.txt"
        ) from error
    config.html_search_options = {**(config.html_search_options or {}), "dict": str(TERMS)}


def setup(app: Sphinx) -> dict:
    """Register the extension with Sphinx."""
    app.connect("config-inited", use_course_dictionary)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
