"""The chapters' box-and-arrow diagrams: boxes, operation circles, wires and arrows.

Every diagram of the course (the unrolled RNN, the BPTT graph, the LSTM and GRU cells, the
bidirectional layer, the shapes of sequence tasks) is drawn from these pieces, on axes in data
units with equal aspect. A piece takes its position first, then its colours, then its style; a
chapter whose diagram wants another style (a thicker line, a bigger head) passes it, or binds
it once with ``functools.partial``.

The chapters import this module from ``book/``; the chapter notebooks of Colab and Binder carry a
copy of it (``scripts/sync_chapter_notebooks.py`` inlines it), so that each runs on its own.

The build's cache (jupyter-cache, ``_build/.jupyter_cache``) knows a chapter by its own cells only:
after changing this module, remove that folder so that ``bash scripts/build.sh`` runs the chapters
again (the tests' build always starts from scratch).
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

INK = "0.15"
GREY = "0.72"
# A box outside the highlighted section keeps its shape but loses its colour.
FADED_FILL = "#e8e8e8"

Point = tuple[float, float]


def frame(ax: Axes, xlim: Point, ylim: Point) -> Axes:
    """Set up ``ax`` as a diagram: the given limits, equal aspect, no axes drawn."""
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def canvas(figsize: Point, xlim: Point, ylim: Point) -> tuple[Figure, Axes]:
    """A new figure with one diagram's axes (see :func:`frame`)."""
    fig, ax = plt.subplots(figsize=figsize)
    return fig, frame(ax, xlim, ylim)


def halo(width: float = 6) -> list[Any]:
    """A white stroke around a line, so that it can cross another line visibly."""
    return [patheffects.withStroke(linewidth=width, foreground="white")]


def arrow(
    ax: Axes,
    start: Point,
    end: Point,
    colour: str = INK,
    *,
    lw: float = 1.3,
    head: float = 13,
    shrink: float = 0.0,
    zorder: float | None = None,
    **style: Any,
) -> FancyArrowPatch:
    """A straight (or, with ``connectionstyle``, curved) arrow from ``start`` to ``end``.

    ``head`` is the arrow head's size, ``shrink`` the gap left at both ends (in points); other
    keywords (``ls``, ``connectionstyle``) go to :class:`~matplotlib.patches.FancyArrowPatch`.
    """
    if zorder is not None:
        style["zorder"] = zorder
    patch = FancyArrowPatch(
        start,
        end,
        arrowstyle="-|>",
        mutation_scale=head,
        lw=lw,
        color=colour,
        shrinkA=shrink,
        shrinkB=shrink,
        **style,
    )
    ax.add_patch(patch)
    return patch


def wire(
    ax: Axes,
    xs: Sequence[float],
    ys: Sequence[float],
    colour: str = INK,
    *,
    lw: float = 1.4,
    zorder: float = 1,
    halo: bool = False,
    head: bool = True,
) -> None:
    """A polyline through ``(xs, ys)``, ending in an arrow head unless ``head`` is false.

    With ``halo``, a white stroke around it lets it cross another wire.
    """
    effects = _halo(6) if halo else None
    end = -1 if head else len(xs)
    style = {"color": colour, "lw": lw, "zorder": zorder}
    ax.plot(xs[:end], ys[:end], path_effects=effects, solid_capstyle="butt", **style)
    if head:
        arrow(ax, (xs[-2], ys[-2]), (xs[-1], ys[-1]), colour, lw=lw, head=14, zorder=zorder)


_halo = halo  # wire's parameter of the same name hides the function


def box(
    ax: Axes,
    cx: float,
    cy: float,
    text: str | None,
    fill: str,
    *,
    width: float = 1.0,
    height: float = 0.6,
    edge: str = INK,
    lw: float = 1.3,
    pad: float = 0.04,
    fontsize: float = 12,
    text_colour: str | None = None,
    zorder: float | None = None,
) -> None:
    """A rounded box centred on ``(cx, cy)`` with ``text`` in it (a layer, a cell, a value).

    The text is in Matplotlib's text colour unless ``text_colour`` says otherwise. With a
    ``zorder``, the text lies just above the box; without, both keep Matplotlib's.
    """
    layer = {} if zorder is None else {"zorder": zorder}
    ax.add_patch(
        FancyBboxPatch(
            (cx - width / 2, cy - height / 2),
            width,
            height,
            boxstyle=f"round,pad={pad}",
            fc=fill,
            ec=edge,
            lw=lw,
            **layer,
        )
    )
    if text is not None:
        _label(ax, cx, cy, text, fontsize, text_colour, zorder)


def node(
    ax: Axes,
    cx: float,
    cy: float,
    text: str,
    edge: str = INK,
    *,
    radius: float = 0.25,
    lw: float = 1.4,
    fontsize: float = 12,
    text_colour: str | None = None,
    zorder: float | None = 3,
) -> None:
    """A white circle centred on ``(cx, cy)`` holding an operation (``⊙``, ``+``, ``1-``).

    The text is in Matplotlib's text colour unless ``text_colour`` says otherwise.
    """
    layer = {} if zorder is None else {"zorder": zorder}
    ax.add_patch(Circle((cx, cy), radius, fc="white", ec=edge, lw=lw, **layer))
    _label(ax, cx, cy, text, fontsize, text_colour, zorder)


def _label(
    ax: Axes,
    cx: float,
    cy: float,
    text: str,
    fontsize: float,
    colour: str | None,
    zorder: float | None,
) -> None:
    """A shape's centred text, just above the shape when it has a ``zorder``."""
    style: dict[str, Any] = {} if colour is None else {"color": colour}
    if zorder is not None:
        style["zorder"] = zorder + 1
    ax.text(cx, cy, text, ha="center", va="center", fontsize=fontsize, **style)


@dataclass(frozen=True)
class Highlight:
    """One section of a cell diagram in its colour, the rest in grey (or all in ink).

    Each piece of the diagram names the sections it belongs to (``parts``).
    """

    section: str | None
    colours: Mapping[str, str]

    def on(self, parts: Collection[str]) -> bool:
        """Whether the piece belongs to the highlighted section."""
        return self.section is not None and self.section in parts

    def shown(self, parts: Collection[str]) -> bool:
        """Whether the piece is drawn normally: nothing is highlighted, or it is."""
        return self.section is None or self.section in parts

    def ink(self, parts: Collection[str]) -> str:
        """The piece's line colour: ink, the section's colour, or grey."""
        if self.section is None:
            return INK
        return self.colours[self.section] if self.section in parts else GREY

    def text_colour(self, parts: Collection[str]) -> str:
        """The colour of the piece's label: ink where shown, grey elsewhere."""
        return INK if self.shown(parts) else GREY

    def fill(self, colour: str, parts: Collection[str]) -> str:
        """The piece's fill: its own colour where shown, a faded grey elsewhere."""
        return colour if self.shown(parts) else FADED_FILL
