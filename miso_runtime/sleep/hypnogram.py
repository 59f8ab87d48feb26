"""Hypnogram picture (SVG or PNG) of scored epochs, drawn headless with matplotlib.

Why this shape: clinicians read a hypnogram top to bottom as Wake, REM, N1, N2, N3, with REM
periods marked by a thick red bar, over clock time in their own time zone. Recordings of one
night may come in several sessions; a hole between them is left empty instead of being bridged
by the step line, so nobody mistakes missing data for sleep.

The figure is built on :class:`matplotlib.figure.Figure` with its own Agg canvas, never
``pyplot`` (global state, not thread-safe). Saving needs a few rcParams (stable SVG ids, text
kept as text); :func:`matplotlib.rc_context` changes them process-wide for its duration, so
renders are serialised by a module lock to keep one render's restore from undoing another's.
The same input gives byte-identical output.
"""

from __future__ import annotations

import io
import math
from datetime import datetime, timezone
from typing import Literal, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from ..native_lock import native_lock
from .statistics import REM, check_epoch_secs, validate_stages

#: One scored epoch: (UTC seconds of the epoch start, stage code, confidence 0..1 or None).
Epoch = tuple[float, int, float | None]

#: Stage code → height on the y axis; the clinical order top to bottom is Wake, REM, N1, N2, N3.
_LEVEL = {0: 4, 5: 3, 1: 2, 2: 1, 3: 0}
_LEVEL_LABELS = ["N3", "N2", "N1", "REM", "Wake"]  # index = level
#: A jump between epoch starts above this many epochs starts a new run (the hole stays empty).
GAP_FACTOR = 1.5
#: Size limits of the picture, pixels per side.
MIN_PX, MAX_PX = 200, 4000
_DPI = 100
#: Candidate spacings of the clock ticks, minutes; the smallest that fits the width is used.
_TICK_STEPS_MIN = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440)
#: Horizontal room one clock label needs, pixels.
_PX_PER_TICK = 90
_LINE_COLOR = "#34495e"
_REM_COLOR = "#d62728"
_CONF_COLOR = "#1f77b4"
_EMPTY_TEXT = "No sleep stages in this range"
_RC = {"svg.hashsalt": "miso", "svg.fonttype": "none"}
#: An OS lock: renders run in the server's threadpool, where gevent's patched locks do not work.
_RENDER_LOCK = native_lock()


def _runs(epochs: Sequence[Epoch], epoch_secs: float) -> list[list[Epoch]]:
    """Split epochs (sorted by start) into runs with no hole between consecutive epoch starts.

    A new run starts where the next start is more than ``GAP_FACTOR`` × ``epoch_secs`` seconds
    after the previous one, i.e. where at least about one epoch is missing.
    """
    ordered = sorted(epochs, key=lambda e: e[0])
    runs: list[list[Epoch]] = []
    for epoch in ordered:
        if runs and epoch[0] - runs[-1][-1][0] <= GAP_FACTOR * epoch_secs:
            runs[-1].append(epoch)
        else:
            runs.append([epoch])
    return runs


def _utc_label(offset_min: int) -> str:
    """``UTC+hh:mm`` / ``UTC-hh:mm`` of an offset in minutes."""
    sign = "-" if offset_min < 0 else "+"
    hours, minutes = divmod(abs(offset_min), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def _clock_ticks(
    t0: float, start_s: float, end_s: float, offset_min: int, width_px: int
) -> tuple[list[float], list[str]]:
    """Tick positions (seconds after ``t0``) at round local clock times, and their HH:MM labels.

    ``start_s``/``end_s`` are the span in seconds after ``t0`` (UTC seconds of the first epoch).
    """
    span_min = max((end_s - start_s) / 60.0, 1e-9)
    max_ticks = max(2, width_px // _PX_PER_TICK)
    step_min = next((s for s in _TICK_STEPS_MIN if span_min / s <= max_ticks), _TICK_STEPS_MIN[-1])
    step_s = step_min * 60
    offset_s = offset_min * 60
    local_start = t0 + start_s + offset_s
    first = math.ceil(local_start / step_s) * step_s
    positions: list[float] = []
    labels: list[str] = []
    local = first
    while local - offset_s - t0 <= end_s + 1e-6:
        positions.append(local - offset_s - t0)
        labels.append(datetime.fromtimestamp(local, tz=timezone.utc).strftime("%H:%M"))
        local += step_s
    return positions, labels


def _validate(
    epochs: Sequence[Epoch], epoch_secs: float, fmt: str, width_px: int, height_px: int, offset_min: int
) -> None:
    """Reject bad arguments up front, before any drawing, with a ValueError that names the argument."""
    if fmt not in ("svg", "png"):
        raise ValueError(f"fmt must be 'svg' or 'png', got {fmt!r}")
    for name, value in (("width_px", width_px), ("height_px", height_px)):
        if not isinstance(value, int) or isinstance(value, bool) or not MIN_PX <= value <= MAX_PX:
            raise ValueError(f"{name} must be an integer in {MIN_PX}..{MAX_PX}, got {value!r}")
    if not isinstance(offset_min, int) or isinstance(offset_min, bool) or abs(offset_min) >= 24 * 60:
        raise ValueError(f"utc_offset_min must be an integer of minutes within ±24 h, got {offset_min!r}")
    check_epoch_secs(epoch_secs)
    validate_stages([e[1] for e in epochs])
    for start, _, conf in epochs:
        if not math.isfinite(float(start)):
            raise ValueError(f"epoch start must be finite UTC seconds, got {start!r}")
        if conf is not None and not (math.isfinite(float(conf)) and 0.0 <= conf <= 1.0):
            raise ValueError(f"confidence must be in 0..1 or None, got {conf!r}")


def _style_stage_axis(ax: Axes) -> None:
    """Stage levels as y ticks (Wake on top), light grid lines, no box on top and right."""
    ax.set_ylim(-0.5, 4.5)
    ax.set_yticks(range(len(_LEVEL_LABELS)), _LEVEL_LABELS)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _draw(fig: Figure, epochs: Sequence[Epoch], epoch_secs: float, title: str, offset_min: int, width_px: int) -> None:
    """Draw the stage axis (and the confidence axis when any confidence is given) on ``fig``."""
    xlabel = f"Time ({_utc_label(offset_min)})"
    if not epochs:
        ax = fig.add_subplot()
        _style_stage_axis(ax)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(NullLocator())
        ax.text(0.5, 0.5, _EMPTY_TEXT, transform=ax.transAxes, ha="center", va="center", color="#666666")
        return

    has_conf = any(e[2] is not None for e in epochs)
    if has_conf:
        ax, ax_conf = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    else:
        ax, ax_conf = fig.add_subplot(), None
    _style_stage_axis(ax)
    ax.set_title(title)

    runs = _runs(epochs, epoch_secs)
    t0 = float(runs[0][0][0])
    end_s = float(runs[-1][-1][0]) - t0 + epoch_secs
    bar_height = 0.3
    for i, run in enumerate(runs):
        # x in seconds after the first epoch: small numbers keep float precision in the renderer.
        starts = np.array([e[0] for e in run], dtype=float) - t0
        levels = np.array([_LEVEL[int(e[1])] for e in run], dtype=float)
        x = np.append(starts, starts[-1] + epoch_secs)
        y = np.append(levels, levels[-1])
        ax.step(x, y, where="post", color=_LINE_COLOR, linewidth=1.2, gid=f"hypnogram-run-{i}")
        # REM bars: consecutive REM epochs of this run merged into one (start, width) span.
        is_rem = np.array([int(e[1]) == REM for e in run])
        edges = np.diff(np.concatenate(([0], is_rem.astype(int), [0])))
        spans = [
            (starts[a], starts[b - 1] + epoch_secs - starts[a])
            for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
        ]
        if spans:
            ax.broken_barh(spans, (_LEVEL[REM] - bar_height / 2, bar_height), color=_REM_COLOR, zorder=3)
        if ax_conf is not None:
            conf = np.array([np.nan if e[2] is None else float(e[2]) for e in run], dtype=float)
            cy = np.append(conf, conf[-1])
            ax_conf.fill_between(x, cy, step="post", color=_CONF_COLOR, alpha=0.25, linewidth=0)
            ax_conf.step(x, cy, where="post", color=_CONF_COLOR, linewidth=0.8)

    positions, labels = _clock_ticks(t0, 0.0, end_s, offset_min, width_px)
    bottom = ax_conf if ax_conf is not None else ax
    ax.set_xlim(0.0, end_s)
    bottom.set_xticks(positions, labels)
    bottom.set_xlabel(xlabel)
    if ax_conf is not None:
        ax.tick_params(axis="x", labelbottom=False)
        ax_conf.set_ylim(0.0, 1.0)
        ax_conf.set_yticks([0.0, 1.0])
        ax_conf.set_ylabel("confidence")
        for side in ("top", "right"):
            ax_conf.spines[side].set_visible(False)


def render_hypnogram(
    epochs: Sequence[Epoch],
    epoch_secs: float,
    fmt: Literal["svg", "png"],
    *,
    title: str = "Hypnogram",
    utc_offset_min: int = 0,
    width_px: int = 1200,
    height_px: int = 420,
) -> bytes:
    """Render the hypnogram of ``epochs`` as SVG or PNG bytes of ``width_px`` × ``height_px`` pixels.

    ``epochs``: (UTC seconds of the epoch start, stage code, confidence 0..1 or None), any order.
    ``epoch_secs``: epoch length, seconds. ``utc_offset_min``: the viewer's UTC offset, minutes,
    applied to the HH:MM clock labels. A per-epoch confidence axis is added under the stages when
    any confidence is given; an empty ``epochs`` gives an empty frame with a notice. Raises
    ValueError on a bad format, size, offset, stage code, start time or confidence.
    """
    _validate(epochs, epoch_secs, fmt, width_px, height_px, utc_offset_min)
    epoch_secs = float(epoch_secs)
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    buf = io.BytesIO()
    with _RENDER_LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI, layout="constrained")
        FigureCanvasAgg(fig)
        _draw(fig, epochs, epoch_secs, title, utc_offset_min, width_px)
        fig.savefig(buf, format=fmt, dpi=_DPI, metadata=metadata)
    return buf.getvalue()
