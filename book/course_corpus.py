"""The language model's corpus: the course's own pages (``book/*.md``) as text.

The sequence-tasks chapter trains a character-level language model on the other pages of the
course. The website reads them from ``book/``. The chapter's notebook for Colab and Binder carries
them, compressed, in its copy of this module: ``scripts/sync_chapter_notebooks.py`` sets
``EMBEDDED_PAGES`` there (see :func:`pack`), so that the notebook needs no upload and no download.
"""

import base64
import json
import lzma
from collections.abc import Collection, Mapping
from pathlib import Path

# The pages, packed (see pack), where a generated notebook carries them; in book/ they are files.
EMBEDDED_PAGES: str | None = None

# The pages' folder, where they are files: this module's own, book/.
BOOK = Path(__file__).resolve().parent


def pack(pages: Mapping[str, str]) -> str:
    """``{file name: text}`` as ``EMBEDDED_PAGES`` holds it: xz-compressed JSON in base64."""
    data = json.dumps(dict(sorted(pages.items())), ensure_ascii=False).encode("utf-8")
    return base64.b64encode(lzma.compress(data, preset=9)).decode("ascii")


def unpack(embedded: str) -> dict[str, str]:
    """The pages that :func:`pack` packed."""
    pages = json.loads(lzma.decompress(base64.b64decode(embedded, validate=True)))
    if not isinstance(pages, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in pages.items()
    ):
        raise ValueError("EMBEDDED_PAGES does not hold {file name: text}")
    return pages


def course_pages(exclude: Collection[str] = ()) -> dict[str, str]:
    """The course's Markdown pages, ``{file name: text}`` in file-name order.

    Parameters
    ----------
    exclude : collection of str
        Pages to leave out, by name without ``.md`` (``{"sequence-tasks"}``).
    """
    if EMBEDDED_PAGES is not None:
        pages = unpack(EMBEDDED_PAGES)
    else:
        pages = {page.name: page.read_text(encoding="utf-8") for page in BOOK.glob("*.md")}
        if not pages:
            raise FileNotFoundError(f"the course's pages (*.md) are not in {BOOK}")
    return {name: text for name, text in sorted(pages.items()) if Path(name).stem not in exclude}
