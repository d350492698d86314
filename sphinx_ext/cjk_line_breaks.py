"""Drop the line breaks of hard-wrapped Chinese prose instead of rendering them as spaces.

A line break inside a Markdown paragraph becomes a space in HTML. Between two Chinese characters
that space is a visible gap ("随时间 变化"), because Chinese does not separate words. This
transform removes a line break (with the spaces around it) when the characters on both sides are
CJK, or when either side is CJK punctuation; between Chinese and Latin text it stays a space.
Code, literals and math are left untouched.
"""

import re

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform

CJK = r"\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
CJK_PUNCTUATION = r"\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
BREAK = re.compile(
    rf"(?<=[{CJK}])[ \t]*\n[ \t]*(?=[{CJK}])"
    rf"|(?<=[{CJK_PUNCTUATION}])[ \t]*\n[ \t]*"
    rf"|[ \t]*\n[ \t]*(?=[{CJK_PUNCTUATION}])"
)
UNTOUCHED = (nodes.literal, nodes.literal_block, nodes.math, nodes.math_block, nodes.raw)


def join_cjk_lines(text: str, before: str = "", after: str = "") -> str:
    """``text`` without its CJK line breaks; ``before``/``after``: the text around it."""
    joined = BREAK.sub("", before + text + after)
    return joined[len(before) : len(joined) - len(after)]


class JoinCJKLines(SphinxTransform):
    """Remove the line breaks between CJK characters (see the module docstring)."""

    default_priority = 800  # after the parser, before the HTML writer and the search index

    def apply(self, **kwargs) -> None:
        """Join the document's hard-wrapped CJK lines."""
        for text in list(self.document.findall(nodes.Text)):
            parent = text.parent
            if "\n" not in text or parent is None or _inside_untouched(text):
                continue
            # A soft line break is often a Text node of its own, between two others. Text nodes
            # are strings and compare equal by value: find this one by identity.
            index = next(i for i, child in enumerate(parent.children) if child is text)
            before = parent[index - 1].astext()[-1:] if index > 0 else ""
            after = parent[index + 1].astext()[:1] if index + 1 < len(parent) else ""
            joined = join_cjk_lines(str(text), before, after)
            if joined != str(text):
                parent[index] = nodes.Text(joined)


def _inside_untouched(node: nodes.Node) -> bool:
    while node.parent is not None:
        node = node.parent
        if isinstance(node, UNTOUCHED):
            return True
    return False


def setup(app: Sphinx) -> dict:
    """Register the extension with Sphinx."""
    app.add_transform(JoinCJKLines)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
