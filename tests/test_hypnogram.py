"""Hypnogram picture: valid SVG/PNG of the requested size, readable labels, stable bytes, gaps left open."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest

from miso_runtime.sleep.hypnogram import _runs, render_hypnogram

W, N1, N2, N3, R = 0, 1, 2, 3, 5
EPOCH_S = 30.0
#: 2024-03-01 22:00:00 UTC; with utc_offset_min=120 the first label reads 00:00.
T0 = datetime(2024, 3, 1, 22, 0, tzinfo=timezone.utc).timestamp()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _session(start: float, stages: list[int], conf: float | None = 0.8) -> list[tuple[float, int, float | None]]:
    return [(start + i * EPOCH_S, stage, conf) for i, stage in enumerate(stages)]


#: Two sessions: 60 min (120 epochs), a 30 min hole, then 30 min (60 epochs).
NIGHT = _session(T0, [W] * 10 + [N1] * 10 + [N2] * 40 + [N3] * 30 + [R] * 20 + [W] * 10) + _session(
    T0 + 90 * 60, [N2] * 20 + [R] * 30 + [W] * 10, conf=None
)


def _svg_texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    return ["".join(el.itertext()).strip() for el in root.iter() if el.tag.endswith("text")]


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    assert png[12:16] == b"IHDR"  # first chunk: 4-byte length, type, then width and height big-endian
    return struct.unpack(">II", png[16:24])


def test_svg_is_xml_with_stage_and_clock_labels():
    texts = _svg_texts(render_hypnogram(NIGHT, EPOCH_S, "svg", utc_offset_min=120, title="Night of 1 March"))
    for label in ("Wake", "REM", "N1", "N2", "N3", "confidence", "Night of 1 March", "Time (UTC+02:00)"):
        assert label in texts
    # 22:00 UTC + 2 h = 00:00 local at the first epoch; the night spans 00:00..02:00 local.
    assert "00:00" in texts and "01:00" in texts


def test_negative_offset_shifts_the_clock_labels():
    texts = _svg_texts(render_hypnogram(NIGHT, EPOCH_S, "svg", utc_offset_min=-330))
    assert "Time (UTC-05:30)" in texts
    # 22:00 UTC - 5:30 = 16:30 local.
    assert "16:30" in texts and "00:00" not in texts


def test_no_confidence_axis_without_confidences():
    epochs = [(t, s, None) for t, s, _ in NIGHT]
    assert "confidence" not in _svg_texts(render_hypnogram(epochs, EPOCH_S, "svg"))


@pytest.mark.parametrize(("width", "height"), [(1200, 420), (640, 300)])
def test_png_has_the_requested_pixel_size(width, height):
    png = render_hypnogram(NIGHT, EPOCH_S, "png", width_px=width, height_px=height)
    assert _png_size(png) == (width, height)


def test_empty_input_renders_a_notice_in_both_formats():
    svg = render_hypnogram([], EPOCH_S, "svg")
    texts = _svg_texts(svg)
    assert "No sleep stages in this range" in texts
    assert "Wake" in texts and "N3" in texts
    assert _png_size(render_hypnogram([], EPOCH_S, "png", width_px=800, height_px=250)) == (800, 250)


def test_same_input_gives_identical_bytes():
    assert render_hypnogram(NIGHT, EPOCH_S, "svg") == render_hypnogram(NIGHT, EPOCH_S, "svg")
    assert render_hypnogram(NIGHT, EPOCH_S, "png") == render_hypnogram(NIGHT, EPOCH_S, "png")


def test_runs_split_at_gaps_longer_than_one_and_a_half_epochs():
    runs = _runs(NIGHT, EPOCH_S)
    assert [len(run) for run in runs] == [120, 60]
    # 45 s between starts (= 1.5 epochs) is still one run; 45.5 s is a hole.
    assert len(_runs([(0.0, W, None), (45.0, N1, None)], EPOCH_S)) == 1
    assert len(_runs([(0.0, W, None), (45.5, N1, None)], EPOCH_S)) == 2
    # Input order does not matter: epochs are sorted by start first.
    assert _runs(list(reversed(NIGHT)), EPOCH_S) == runs
    assert _runs([], EPOCH_S) == []


def test_gap_is_not_joined_in_the_picture():
    # Each run's step line is its own SVG group (gid "hypnogram-run-<i>"): two sessions, two lines.
    svg = render_hypnogram(NIGHT, EPOCH_S, "svg").decode()
    assert svg.count('id="hypnogram-run-') == 2
    joined = _session(T0, [W, N1, N2, N2, R, W])
    assert render_hypnogram(joined, EPOCH_S, "svg").decode().count('id="hypnogram-run-') == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fmt": "jpg"}, "fmt"),
        ({"fmt": "SVG"}, "fmt"),
        ({"width_px": 199}, "width_px"),
        ({"width_px": 4001}, "width_px"),
        ({"height_px": 100}, "height_px"),
        ({"height_px": 5000}, "height_px"),
        ({"utc_offset_min": 24 * 60}, "utc_offset_min"),
        ({"epoch_secs": 0}, "epoch_secs"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    args = {"epochs": NIGHT, "epoch_secs": EPOCH_S, "fmt": "svg", **kwargs}
    with pytest.raises(ValueError, match=match):
        render_hypnogram(**args)


@pytest.mark.parametrize("epoch", [(T0, 4, None), (T0, N2, 1.5), (T0, N2, -0.1), (float("nan"), N2, None)])
def test_bad_epochs_raise_value_error(epoch):
    with pytest.raises(ValueError):
        render_hypnogram([epoch], EPOCH_S, "png")
