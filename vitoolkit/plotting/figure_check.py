"""Find the defects a reader would notice in a drawn figure.

:func:`check_figure` draws a figure with the Agg renderer and measures it in
display coordinates (pixels). It reports, as one sentence each naming the axes
by its title:

- a legend that covers plotted data: a line segment (tested exactly, along its
  whole length, not only at its vertices), a marker, a scatter point, a bar, the
  outline of a patch or a filled area; an image, a mesh or filled contours only
  when the legend hides more than :data:`AREA_FRACTION` of it; a reference line
  spanning the whole axes (``axhline``/``axvline``) only when the legend hides
  more than half of it. Legends placed outside their axes are checked against
  every axes they overlap;
- tick labels that overlap each other (x and y, major and minor, in one axes or
  across axes; visible labels within the view limits only; rotated labels are
  compared as rotated rectangles, not as their bounding boxes);
- titles (axes titles, the suptitle) and axis labels that collide with another
  title, a tick or axis label, a legend or another axes' plotting area;
- titles that reach into the band where an axis draws its tick labels, judged
  against every tick the axis could show, not only the ones this draw placed:
  a y axis may put a label at either end of its range (half a label above the
  top), so a title wider than its axes that clears this run's top label can
  still collide for other numbers (see :func:`_tick_bands`);
- an axes that is visible but shows nothing: no data inside its limits, no text,
  no legend.

Plotting code keeps a figure free of these defects; :class:`vitoolkit.course.tutorial.Tutorial`
runs the check on every figure it saves and records what it finds.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

__all__ = ["check_figure", "checked_draw", "DrawCheck", "AREA_FRACTION"]

#: Fraction of an image (or mesh, filled contours) a legend may hide before it counts as covering it.
AREA_FRACTION = 0.10
#: Pixels: a legend box is shrunk by this much before testing (a line grazing its frame is not covered),
#: and two texts must overlap by more than this to collide.
_TOL = 1.0


# -- geometry ---------------------------------------------------------------

def _box(bbox) -> np.ndarray:
    """(x0, y0, x1, y1) of a matplotlib Bbox."""
    return np.array([bbox.x0, bbox.y0, bbox.x1, bbox.y1], dtype=float)


def _intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    out = np.array([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])])
    return out if out[0] <= out[2] and out[1] <= out[3] else None


def _area(box: np.ndarray | None) -> float:
    return 0.0 if box is None else float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))


def _segments_hit(seg: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which segments meet the closed box, and the length of each inside it (Liang-Barsky clipping).

    seg : array of shape (n, 4) with rows (x0, y0, x1, y1).
    """
    x0, y0, x1, y1 = seg.T
    dx, dy = x1 - x0, y1 - y0
    t0 = np.zeros(len(seg))
    t1 = np.ones(len(seg))
    ok = np.ones(len(seg), dtype=bool)
    for p, q in ((-dx, x0 - box[0]), (dx, box[2] - x0), (-dy, y0 - box[1]), (dy, box[3] - y0)):
        zero = p == 0
        ok &= ~(zero & (q < 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(zero, 0.0, q / np.where(zero, 1.0, p))
        t0 = np.where(~zero & (p < 0), np.maximum(t0, r), t0)
        t1 = np.where(~zero & (p > 0), np.minimum(t1, r), t1)
    ok &= t0 <= t1
    length = np.hypot(dx, dy) * np.clip(t1 - t0, 0.0, None)
    return ok, np.where(ok, length, 0.0)


def _points_in(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    x, y = points.T
    return (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])


def _polyline_segments(vertices: np.ndarray) -> np.ndarray:
    """Consecutive vertex pairs with both ends finite, as an (n, 4) array."""
    v = np.asarray(vertices, dtype=float).reshape(-1, 2)
    if len(v) < 2:
        return np.empty((0, 4))
    seg = np.hstack([v[:-1], v[1:]])
    return seg[np.isfinite(seg).all(axis=1)]


def _quads_overlap(a: np.ndarray, b: np.ndarray, tol: float = _TOL) -> bool:
    """Two convex quadrilaterals (4, 2) overlap by more than ``tol`` pixels (separating axes)."""
    for quad in (a, b):
        edges = np.roll(quad, -1, axis=0) - quad
        for ex, ey in edges:
            n = math.hypot(ex, ey)
            if n == 0:
                continue
            axis = np.array([-ey, ex]) / n
            pa, pb = a @ axis, b @ axis
            if min(pa.max(), pb.max()) - max(pa.min(), pb.min()) <= tol:
                return False
    return True


# -- what is drawn ------------------------------------------------------------

@dataclass
class _Data:
    """Plotted data of one artist in display coordinates."""

    what: str
    kind: str  # "segments", "points", "rects", "area" or "reference"
    geom: np.ndarray  # (n, 4) segments / rects as boxes / area box; (n, 2) points
    clip: np.ndarray | None  # the box the artist is clipped to, if any


@dataclass
class _Text:
    what: str
    owner: object  # the Axes, or None for a figure-level text
    role: str  # "tick", "title", "label" or "tickband" (see _tick_bands)
    quad: np.ndarray  # (4, 2) corners of the (possibly rotated) text rectangle
    box: np.ndarray
    axis: str = ""  # "x"/"y" for tick labels, "x offset"/"y offset" for offset texts
    text: str = ""


def _visible(artist) -> bool:
    alpha = artist.get_alpha()
    return bool(artist.get_visible()) and (alpha is None or np.all(np.asarray(alpha) > 0))


def _label(artist, kind: str) -> str:
    label = artist.get_label()
    if isinstance(label, str) and label and not label.startswith("_"):
        return f'{kind} "{label}"'
    return kind


def _clip_box(artist, ax) -> np.ndarray | None:
    if not artist.get_clip_on():
        return None
    box = artist.get_clip_box()
    return _box(box if box is not None else ax.bbox)


def _line_data(line, ax) -> list[_Data]:
    from matplotlib import cbook

    if not _visible(line):
        return []
    xy = np.asarray(line.get_xydata(), dtype=float).reshape(-1, 2)
    if not len(xy):
        return []
    clip = _clip_box(line, ax)
    trans = line.get_transform()
    out = []
    marker = line.get_marker()
    if marker not in (None, "None", "none", "", " ") and line.get_markersize() > 0:
        pts = trans.transform(xy)
        pts = pts[np.isfinite(pts).all(axis=1)]
        if len(pts):
            out.append(_Data(_label(line, "markers of line"), "points", pts, clip))
    if line.get_linestyle() not in ("None", "none", "", " ") and line.get_linewidth() > 0:
        drawstyle = line.get_drawstyle() or "default"
        if drawstyle != "default" and drawstyle in cbook.STEP_LOOKUP_MAP:
            xy = np.column_stack(cbook.STEP_LOOKUP_MAP[drawstyle](*xy.T))
        seg = _polyline_segments(trans.transform(xy))
        if len(seg):
            spans = trans in (ax.get_yaxis_transform(), ax.get_xaxis_transform())
            kind = "reference" if spans else "segments"
            out.append(_Data(_label(line, "reference line" if spans else "line"), kind, seg, clip))
    return out


def _path_segments(paths, transform) -> np.ndarray:
    segs = [np.empty((0, 4))]
    for path in paths:
        for poly in path.to_polygons(transform, closed_only=False):
            segs.append(_polyline_segments(poly))
    return np.vstack(segs)


def _collection_data(coll, ax, renderer) -> list[_Data]:
    from matplotlib.collections import LineCollection, PathCollection, PolyCollection, QuadMesh
    from matplotlib.contour import ContourSet

    if not _visible(coll):
        return []
    clip = _clip_box(coll, ax)
    offsets = np.asarray(coll.get_offsets(), dtype=float).reshape(-1, 2)
    if isinstance(coll, PathCollection) or len(offsets) > 1:
        pts = coll.get_offset_transform().transform(offsets)
        pts = pts[np.isfinite(pts).all(axis=1)]
        return [_Data(_label(coll, "scatter points"), "points", pts, clip)] if len(pts) else []
    if isinstance(coll, QuadMesh) or (isinstance(coll, ContourSet) and coll.filled):
        if isinstance(coll, QuadMesh):
            v = np.asarray(coll.get_coordinates(), dtype=float).reshape(-1, 2)
        else:
            v = np.vstack([np.empty((0, 2))] + [p.vertices for p in coll.get_paths()])
        v = coll.get_transform().transform(v) if len(v) else v
        v = v[np.isfinite(v).all(axis=1)]
        if not len(v):
            return []
        box = np.array([*v.min(axis=0), *v.max(axis=0)])
        if _area(box) == 0:
            return []
        return [_Data(_label(coll, "filled contours" if isinstance(coll, ContourSet) else "mesh"),
                      "area", box[None], clip)]
    seg = _path_segments(coll.get_paths(), coll.get_transform())
    kind = "lines" if isinstance(coll, (ContourSet, LineCollection)) else (
        "filled area" if isinstance(coll, PolyCollection) else "collection")
    return [_Data(_label(coll, kind), "segments", seg, clip)] if len(seg) else []


def _patch_data(patch, ax) -> list[_Data]:
    from matplotlib.patches import Rectangle

    if not _visible(patch):
        return []
    face = patch.get_facecolor()
    edge = patch.get_edgecolor()
    if (not patch.get_fill() or face[3] == 0) and (edge[3] == 0 or patch.get_linewidth() == 0):
        return []
    clip = _clip_box(patch, ax)
    polys = patch.get_path().to_polygons(patch.get_transform(), closed_only=False)
    if isinstance(patch, Rectangle) and patch.get_data_transform() is ax.transData:
        v = np.vstack(polys) if polys else np.empty((0, 2))
        v = v[np.isfinite(v).all(axis=1)]
        if not len(v):
            return []
        box = np.array([v[:, 0].min(), v[:, 1].min(), v[:, 0].max(), v[:, 1].max()])
        return [_Data(_label(patch, "bar"), "rects", box[None], clip)]
    seg = np.vstack([np.empty((0, 4))] + [_polyline_segments(p) for p in polys])
    return [_Data(_label(patch, "patch"), "segments", seg, clip)] if len(seg) else []


def _image_data(image, ax, renderer) -> list[_Data]:
    if not _visible(image):
        return []
    box = _box(image.get_window_extent(renderer))
    if not np.isfinite(box).all() or _area(box) == 0:
        return []
    return [_Data(_label(image, "image"), "area", box[None], _clip_box(image, ax))]


def _axes_data(ax, renderer) -> list[_Data]:
    # Bars and error bars carry their label on the container, not on each artist.
    owner = {}
    for container in ax.containers:
        label = container.get_label()
        if isinstance(label, str) and label and not label.startswith("_"):
            for child in container.get_children():
                owner[id(child)] = label
    out: list[_Data] = []
    artists = [(a, _line_data, (a, ax)) for a in ax.lines]
    artists += [(a, _collection_data, (a, ax, renderer)) for a in ax.collections]
    artists += [(a, _patch_data, (a, ax)) for a in ax.patches]
    artists += [(a, _image_data, (a, ax, renderer)) for a in ax.images]
    for artist, extract, args in artists:
        items = extract(*args)
        if id(artist) in owner:
            for item in items:
                if '"' not in item.what:
                    item.what = f'{item.what} "{owner[id(artist)]}"'
        out += items
    return out


def _covered(item: _Data, region: np.ndarray) -> bool:
    """Whether the region (a legend box) hides part of this data (see the module docstring)."""
    if item.clip is not None:
        region = _intersect(region, item.clip)
        if region is None:
            return False
    if item.kind == "points":
        return bool(_points_in(item.geom, region).any())
    if item.kind == "segments":
        return bool(_segments_hit(item.geom, region)[0].any())
    if item.kind == "reference":
        total = np.hypot(item.geom[:, 2] - item.geom[:, 0], item.geom[:, 3] - item.geom[:, 1])
        visible = total.sum()
        if item.clip is not None:
            visible = _segments_hit(item.geom, item.clip)[1].sum()
        return visible > 0 and _segments_hit(item.geom, region)[1].sum() > 0.5 * visible
    if item.kind == "rects":
        for rect in item.geom:
            inter = _intersect(rect, region)
            if inter is not None and inter[2] - inter[0] > _TOL and inter[3] - inter[1] > _TOL:
                return True
        return False
    shown = _intersect(item.geom[0], item.clip) if item.clip is not None else item.geom[0]
    return _area(shown) > 0 and _area(_intersect(shown, region)) > AREA_FRACTION * _area(shown)


def _shows_something(item: _Data, box: np.ndarray) -> bool:
    """Whether any of this data is drawn inside the axes box."""
    if item.kind == "points":
        return bool(_points_in(item.geom, box).any())
    if item.kind in ("segments", "reference"):
        return bool(_segments_hit(item.geom, box)[0].any())
    return any(_area(_intersect(g, box)) > 0 for g in item.geom)


# -- texts ------------------------------------------------------------------

def _text_quad(text, renderer) -> np.ndarray:
    """Corners of the text's rectangle, rotated as drawn, inside its window extent."""
    box = _box(text.get_window_extent(renderer))
    angle = text.get_rotation() % 360.0
    if min(angle % 90.0, 90.0 - angle % 90.0) < 1e-6:
        return np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]])
    text.set_rotation(0.0)
    try:
        flat = _box(text.get_window_extent(renderer))
    finally:
        text.set_rotation(angle)
    w, h = flat[2] - flat[0], flat[3] - flat[1]
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    local = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    rotated = local @ np.array([[c, s], [-s, c]])
    return rotated - rotated.min(axis=0) + box[:2]


def _text_item(text, renderer, what: str, owner, role: str, axis: str = "") -> _Text | None:
    if text is None or not text.get_visible() or not text.get_text().strip():
        return None
    quad = _text_quad(text, renderer)
    if not np.isfinite(quad).all():
        return None
    box = np.array([*quad.min(axis=0), *quad.max(axis=0)])
    return _Text(what, owner, role, quad, box, axis, _short(text.get_text(), 30))


def _shown_ticks(axis):
    """The (tick, loc) pairs drawn: within the view interval (as matplotlib decides it)."""
    tr = axis.get_transform()
    lo, hi = sorted(tr.transform(np.asarray(axis.get_view_interval(), dtype=float)))
    eps = 1e-10 * abs(hi - lo) if np.isfinite(hi - lo) else 0.0
    pairs = []
    for locs, get in ((axis.get_majorticklocs(), axis.get_major_ticks),
                      (axis.get_minorticklocs(), axis.get_minor_ticks)):
        locs = np.asarray(locs, dtype=float)
        if not len(locs):
            continue
        with np.errstate(all="ignore"):
            locs_t = tr.transform(locs)
        for tick, loc, loc_t in zip(get(len(locs)), locs, locs_t, strict=False):
            if tick.get_visible() and np.isfinite(loc_t) and lo - eps <= loc_t <= hi + eps:
                pairs.append((tick, loc))
    return pairs


def _axes_texts(ax, name: str, renderer) -> list[_Text]:
    out = []
    titles = [(ax.title, "title"), (getattr(ax, "_left_title", None), "left title"),
              (getattr(ax, "_right_title", None), "right title")]
    for text, kind in titles:
        what = f"the title of {name}" if text is ax.title else \
            f'the {kind} "{_short(getattr(text, "get_text", str)())}" of {name}'
        item = _text_item(text, renderer, what, ax, "title")
        if item is not None:
            out.append(item)
    if not ax.axison:
        return out
    for letter, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        if not axis.get_visible():
            continue
        item = _text_item(axis.label, renderer, f"the {letter} label of {name}", ax, "label")
        if item is not None:
            out.append(item)
        item = _text_item(axis.offsetText, renderer, f"the {letter} offset text of {name}", ax, "tick",
                          axis=f"{letter} offset")
        if item is not None:
            out.append(item)
        for tick, _loc in _shown_ticks(axis):
            for label in (tick.label1, tick.label2):
                item = _text_item(label, renderer, f'{letter} tick label "{_short(label.get_text())}"',
                                  ax, "tick", axis=letter)
                if item is not None:
                    out.append(item)
    return out


def _tick_bands(ax, name: str, texts: list[_Text]) -> list[_Text]:
    """Where ``ax`` may draw tick labels for any data: one band per labelled side of each axis.

    A y axis's labels sit in the column beside the axes that the drawn labels
    span (right-aligned, so its left edge is the widest label's), and a label may
    be centred on any point of the axis, the two ends included, so the column
    reaches half a label height beyond the top and the bottom of the axes. An x
    axis's row likewise reaches half the widest label beyond each side. A layout
    checked only against the labels one run drew passes or fails with the data;
    checked against these bands it does not.
    """
    bands = []
    box = _box(ax.bbox)
    for letter in ("x", "y"):
        labels = [t for t in texts if t.owner is ax and t.role == "tick" and t.axis == letter]
        if not labels:
            continue
        boxes = np.array([t.box for t in labels])
        w = float((boxes[:, 2] - boxes[:, 0]).max())
        h = float((boxes[:, 3] - boxes[:, 1]).max())
        if letter == "y":
            left = boxes[boxes[:, 2] <= box[0] + _TOL]
            right = boxes[boxes[:, 0] >= box[2] - _TOL]
            spans = ([(left[:, 0].min(), left[:, 2].max())] if len(left) else []) + \
                ([(right[:, 0].min(), right[:, 2].max())] if len(right) else [])
            rects = [np.array([x0, box[1] - h / 2, x1, box[3] + h / 2]) for x0, x1 in spans]
        else:
            below = boxes[boxes[:, 3] <= box[1] + _TOL]
            above = boxes[boxes[:, 1] >= box[3] - _TOL]
            spans = ([(below[:, 1].min(), below[:, 3].max())] if len(below) else []) + \
                ([(above[:, 1].min(), above[:, 3].max())] if len(above) else [])
            rects = [np.array([box[0] - w / 2, y0, box[2] + w / 2, y1]) for y0, y1 in spans]
        for r in rects:
            quad = np.array([[r[0], r[1]], [r[2], r[1]], [r[2], r[3]], [r[0], r[3]]])
            bands.append(_Text(f"the {letter} tick labels of {name} (at some tick of its range)",
                               ax, "tickband", quad, r, letter))
    return bands


def _band_problems(texts: list[_Text], bands: list[_Text]) -> list[str]:
    """Titles that reach into a tick-label band (of any axes): a collision for some data."""
    problems = []
    titles = [t for t in texts if t.role == "title"]
    for title in titles:
        for band in bands:
            inter = _intersect(title.box, band.box)
            if inter is not None and inter[2] - inter[0] > _TOL and inter[3] - inter[1] > _TOL:
                problems.append(f"{title.what} reaches into {band.what}; whether it collides depends on "
                                "the numbers: shorten or wrap the title, or give the axes the width "
                                "(a legend below, not beside, the axes)")
    return problems


def _short(text: str, n: int = 50) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


# -- names ------------------------------------------------------------------

def _axes_names(axes) -> dict:
    titles = {}
    for ax in axes:
        title = next((ax.get_title(loc) for loc in ("center", "left", "right") if ax.get_title(loc)), "")
        titles[ax] = _short(title)
    names, seen = {}, {}
    for i, ax in enumerate(axes, 1):
        cbar = getattr(ax, "_colorbar", None)
        if cbar is not None and not titles[ax]:
            parent = getattr(getattr(cbar, "mappable", None), "axes", None)
            inner = f'"{titles[parent]}"' if parent in titles and titles[parent] else f"axes {i - 1}"
            names[ax] = f"the colorbar of {inner}"
            continue
        if titles[ax]:
            seen[titles[ax]] = seen.get(titles[ax], 0) + 1
            dup = sum(titles[a] == titles[ax] for a in axes) > 1
            names[ax] = f'axes "{titles[ax]}"' + (f" (#{seen[titles[ax]]})" if dup else "")
        else:
            labels = [s for s in (ax.get_xlabel(), ax.get_ylabel()) if s]
            extra = f"; labels {' / '.join(map(_short, labels))}" if labels else ""
            names[ax] = f"axes {i} of {len(axes)} (untitled{extra})"
    return names


# -- the check ----------------------------------------------------------------

def _all_figures(fig):
    yield fig
    for sub in getattr(fig, "subfigs", []):
        yield from _all_figures(sub)


def _legend_problems(axes, names, data, renderer, figs) -> list[str]:
    legends = [(ax.get_legend(), f"the legend of {names[ax]}", ax) for ax in axes if ax.get_legend()]
    for f in figs:
        legends += [(leg, "the figure legend", None) for leg in f.legends]
    problems = []
    for legend, legend_name, home in legends:
        if not legend.get_visible():
            continue
        lbox = _box(legend.get_window_extent(renderer))
        region = lbox + np.array([_TOL, _TOL, -_TOL, -_TOL])
        if region[0] >= region[2] or region[1] >= region[3]:
            continue
        for ax in axes:
            if _intersect(region, _box(ax.bbox)) is None and ax is not home:
                continue
            hidden = [d.what for d in data[ax] if _covered(d, region)]
            if not hidden:
                continue
            hidden = list(dict.fromkeys(hidden))
            listed = ", ".join(hidden[:4]) + (f" and {len(hidden) - 4} more" if len(hidden) > 4 else "")
            whose = "its legend" if ax is home else legend_name
            problems.append(f"{names[ax]}: {whose} covers plotted data ({listed}); "
                            "move it (loc='best', outside the axes) or use fewer entries")
    return problems


def _overlapping_pairs(items: list[_Text]):
    """Index pairs (i, j), i < j, of texts whose rectangles overlap by more than the tolerance."""
    if len(items) < 2:
        return []
    boxes = np.array([t.box for t in items])
    w = np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    h = np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    cand = np.argwhere(np.triu((w > _TOL) & (h > _TOL), k=1))
    return [(int(i), int(j)) for i, j in cand if _quads_overlap(items[i].quad, items[j].quad)]


def _tick_problems(texts: list[_Text], names) -> list[str]:
    ticks = [t for t in texts if t.role == "tick"]
    grouped: dict[tuple, list[str]] = {}
    for i, j in _overlapping_pairs(ticks):
        a, b = ticks[i], ticks[j]
        if a.owner is b.owner and a.axis == b.axis:
            key = (names[a.owner], f"{a.axis} tick labels overlap")
        elif a.owner is b.owner:
            key = (names[a.owner], f"{a.axis} and {b.axis} tick labels overlap")
        else:
            key = (names[a.owner], f"tick labels overlap those of {names[b.owner]}")
        grouped.setdefault(key, []).append(f'"{a.text}" / "{b.text}"')
    problems = []
    for (name, what), pairs in grouped.items():
        listed = ", ".join(pairs[:3]) + (f" and {len(pairs) - 3} more pairs" if len(pairs) > 3 else "")
        problems.append(f"{name}: {what} ({listed}); rotate them, use fewer ticks or a shorter format")
    return problems


def _title_problems(texts: list[_Text], axes, names, renderer, figs) -> list[str]:
    problems = []
    heads = [t for t in texts if t.role in ("title", "label")]
    for i, j in _overlapping_pairs(texts):
        a, b = texts[i], texts[j]
        if a.role not in ("title", "label") and b.role not in ("title", "label"):
            continue  # tick against tick: reported by _tick_problems
        if "title" not in (a.role, b.role) and a.owner is b.owner:
            continue  # an axis label against its own ticks: matplotlib pads these apart
        if a.role != "title" and b.role == "title":
            a, b = b, a
        b_name = b.what if b.owner is None or b.role != "tick" else f"{b.what} of {names[b.owner]}"
        problems.append(f"{a.what} collides with {b_name}")
    legends = [(ax.get_legend(), f"the legend of {names[ax]}") for ax in axes if ax.get_legend()]
    legends += [(leg, "the figure legend") for f in figs for leg in f.legends]
    for head in heads:
        for legend, legend_name in legends:
            if not legend.get_visible():
                continue
            inter = _intersect(head.box, _box(legend.get_window_extent(renderer)))
            if inter is not None and inter[2] - inter[0] > _TOL and inter[3] - inter[1] > _TOL:
                problems.append(f"{head.what} collides with {legend_name}")
        for ax in axes:
            if ax is head.owner or _related(ax, head.owner):
                continue
            inter = _intersect(head.box, _box(ax.bbox))
            if inter is not None and inter[2] - inter[0] > _TOL and inter[3] - inter[1] > _TOL:
                problems.append(f"{head.what} runs into the plotting area of {names[ax]}")
    return problems


def _related(a, b) -> bool:
    """Whether one axes is an inset of the other (a text may legitimately sit over its parent)."""
    if b is None:
        return False
    return a in getattr(b, "child_axes", []) or b in getattr(a, "child_axes", [])


def _empty_problems(axes, names, data) -> list[str]:
    problems = []
    for ax in axes:
        box = _box(ax.bbox)
        if any(_shows_something(d, box) for d in data[ax]):
            continue
        if ax.get_legend() is not None or getattr(ax, "tables", None) or ax.child_axes:
            continue
        if any(t.get_visible() and t.get_text().strip() for t in ax.texts):
            continue
        problems.append(f"{names[ax]}: empty (nothing plotted inside its limits); plot into it, "
                        "or remove it (fig.delaxes(ax)) or hide it (ax.set_visible(False))")
    return problems


def _measure(fig, renderer) -> list[str]:
    """The problems of ``fig`` as laid out and drawn with ``renderer`` (no drawing here)."""
    axes = [ax for ax in fig.get_axes() if ax.get_visible()]
    figs = list(_all_figures(fig))
    names = _axes_names(axes)
    data = {ax: _axes_data(ax, renderer) for ax in axes}
    texts: list[_Text] = []
    for ax in axes:
        texts += _axes_texts(ax, names[ax], renderer)
    for f in figs:
        for attr, what in (("_suptitle", "the suptitle"), ("_supxlabel", "the figure x label"),
                           ("_supylabel", "the figure y label")):
            text = getattr(f, attr, None)
            item = _text_item(text, renderer, what, None, "title" if attr == "_suptitle" else "label")
            if item is not None:
                if attr == "_suptitle":
                    item.what = f'the suptitle "{_short(text.get_text())}"'
                texts.append(item)
    problems = _legend_problems(axes, names, data, renderer, figs)
    problems += _tick_problems(texts, names)
    problems += _title_problems(texts, axes, names, renderer, figs)
    bands = [b for ax in axes for b in _tick_bands(ax, names[ax], texts)]
    problems += _band_problems(texts, bands)
    problems += _empty_problems(axes, names, data)
    return problems


class DrawCheck:
    """What :func:`checked_draw` found: ``problems`` of the last draw (None: not drawn yet)."""

    def __init__(self):
        self.problems: list[str] | None = None
        self.error: Exception | None = None


def _dry(renderer) -> bool:
    """A layout-only pass (``bbox_inches="tight"``'s first draw): its draw methods are no-ops.

    Measuring it would be correct too, only wasted: the real draw follows.
    """
    return "draw_path" in vars(renderer)


@contextmanager
def checked_draw(fig):
    """Check ``fig`` each time it is drawn inside the block, on the draw itself.

    Saving a figure draws it; checking on that draw (the ``draw_event``, with the
    renderer that produced the file) measures exactly what was saved and costs no
    extra draw::

        with checked_draw(fig) as check:
            fig.savefig("f.png", bbox_inches="tight")
        check.problems  # as check_figure would report them (None if nothing was drawn)

    An exception inside the check is kept in ``check.error`` instead of breaking the draw.
    """
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    check = DrawCheck()

    def on_draw(event):
        if _dry(event.renderer):
            return
        try:
            check.problems = _measure(fig, event.renderer)
            check.error = None
        except Exception as err:  # noqa: BLE001 - reported by the caller, never breaks a savefig
            check.error = err

    cid = fig.canvas.mpl_connect("draw_event", on_draw)
    try:
        yield check
    finally:
        fig.canvas.mpl_disconnect(cid)


def check_figure(fig) -> list[str]:
    """The defects of ``fig`` a reader would notice, one sentence each (empty list: none).

    The figure is drawn with the Agg renderer first (so the layout engine, legend
    placement and ticks have settled) and measured in display coordinates; see
    the module docstring for what is checked and the tolerances. To check a
    figure while saving it, without a second draw, use :func:`checked_draw`.

    Parameters
    ----------
    fig : matplotlib.figure.Figure

    Returns
    -------
    list of str
        Each problem names the axes by its title (or position when untitled) and
        says what is wrong and what to do about it.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    restore = None
    canvas = fig.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        restore = canvas
        canvas = FigureCanvasAgg(fig)  # sets fig.canvas; put back below
    try:
        with checked_draw(fig) as check:
            canvas.draw()
    finally:
        if restore is not None:
            fig.set_canvas(restore)
    if check.error is not None:
        raise check.error
    return check.problems if check.problems is not None else []
