"""Layout checks of a matplotlib figure: every text inside the figure, legends off the data.

:func:`layout_problems` draws a figure at the resolution of its PNG and lists what a
reader would flag: a title, label or legend entry cut at the edge of the figure, a
legend sticking out of it, two legends on top of each other, or a legend covering the
plotted data (points of the lines, sampled along each segment, error bars and markers)
of any panel.  The figure tests assert that the list is empty.
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.text import Text


__all__ = ["layout_problems"]


def _drawn_texts(fig):
    """The texts that are drawn: visible ones, tick labels only for ticks in view."""
    ticks = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                labels = (tick.label1, tick.label2)
                ticks.update(map(id, labels))
                if low - 1e-12 * abs(high - low) <= tick.get_loc() <= high + 1e-12 * abs(high - low):
                    yield from (t for t in labels if t.get_visible())
    for text in fig.findobj(Text):
        if id(text) not in ticks and text.get_visible():
            yield text


def _data_points(ax, n_sub=25):
    """Display coordinates of the drawn data of ``ax`` (lines sampled along each segment)."""
    box = ax.get_window_extent()
    pieces = []
    for line in ax.lines:
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
        pieces.append(_sampled(xy, n_sub if line.get_linestyle() not in ("None", "none", "") else 1))
    for coll in ax.collections:
        if isinstance(coll, LineCollection):
            for seg in coll.get_segments():
                pieces.append(_sampled(coll.get_transform().transform(seg), n_sub))
        elif isinstance(coll, PathCollection):
            pieces.append(coll.get_offset_transform().transform(coll.get_offsets()))
    pts = np.concatenate(pieces) if pieces else np.empty((0, 2))
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    inside = ((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0)
              & (pts[:, 1] <= box.y1))
    return pts[inside]


def _sampled(xy, n_sub):
    """``xy`` with ``n_sub`` points per segment (a legend may sit between two vertices)."""
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    if len(xy) < 2 or n_sub <= 1:
        return xy
    s = np.linspace(0, 1, n_sub, endpoint=False)[None, :, None]
    return np.concatenate([(xy[:-1, None] + s * (xy[1:, None] - xy[:-1, None])).reshape(-1, 2),
                           xy[-1:]])


def layout_problems(fig, dpi: float = 150, tolerance: float = 1.0) -> list[str]:
    """What is wrong with the layout of ``fig``, drawn at ``dpi`` (that of its PNG).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : float
        Resolution to draw at (text extents depend on it through rounding).
    tolerance : float
        Pixels by which a text may touch the edge of the figure.

    Returns
    -------
    list of str
        One line per problem: a text outside the figure, a legend outside it or
        overlapping another legend, a legend covering data points; empty if none.
    """
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    problems = []
    for text in _drawn_texts(fig):
        if not text.get_text().strip():
            continue
        ext = text.get_window_extent(renderer)
        if (ext.x0 < box.x0 - tolerance or ext.y0 < box.y0 - tolerance
                or ext.x1 > box.x1 + tolerance or ext.y1 > box.y1 + tolerance):
            problems.append(f"text {text.get_text()!r} outside the figure: {ext.bounds}")
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + fig.legends
    boxes = [legend.get_window_extent(renderer) for legend in legends]
    for i, ext in enumerate(boxes):
        if not box.contains(ext.x0 + tolerance, ext.y0 + tolerance) \
                or not box.contains(ext.x1 - tolerance, ext.y1 - tolerance):
            problems.append(f"legend {i} outside the figure: {ext.bounds}")
        problems += [f"legends {i} and {j} overlap" for j in range(i)
                     if ext.overlaps(boxes[j])]
    for legend, ext in zip(legends, boxes):
        for ax in fig.axes:
            pts = _data_points(ax)
            hit = ((pts[:, 0] > ext.x0) & (pts[:, 0] < ext.x1) & (pts[:, 1] > ext.y0)
                   & (pts[:, 1] < ext.y1))
            if hit.any():
                labels = [t.get_text() for t in legend.get_texts()][:2]
                problems.append(f"legend {labels} covers {hit.sum()} data points of the "
                                f"panel {ax.get_title()!r}")
    return problems
