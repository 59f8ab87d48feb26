"""Tests of miso_runtime.neuro on synthetic signals at 256 Hz (no I/O, runs in seconds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from miso_runtime.constants import BAND_NAMES, BANDS, SLIDING_BATCH_MAX_WINDOWS, TOTAL_POWER_RANGE_HZ
from miso_runtime.neuro.bands import (
    SCORE_NAMES,
    BandPowers,
    SlidingBandPowers,
    band_powers,
    derived_scores,
    derived_scores_array,
)
from miso_runtime.neuro.epochs import Epocher
from miso_runtime.neuro.filters import StreamingFilter
from miso_runtime.neuro.quality import ChannelQuality, assess_quality

FS = 256.0
N_CH = 4


def sine(
    freq_hz: float, seconds: float, amp_uv: float = 20.0, n_ch: int = N_CH, fs: float = FS, phase: float = 0.0
) -> np.ndarray:
    t = np.arange(int(round(seconds * fs))) / fs
    return np.tile(amp_uv * np.sin(2 * np.pi * freq_hz * t + phase), (n_ch, 1))


def noise(seconds: float, sd_uv: float = 1.0, n_ch: int = N_CH, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, sd_uv, (n_ch, int(round(seconds * FS))))


def tone_power(x: np.ndarray, freq_hz: float) -> np.ndarray:
    """Power per channel at one frequency (projection on sin/cos over whole cycles)."""
    t = np.arange(x.shape[1]) / FS
    c = (x * np.cos(2 * np.pi * freq_hz * t)).mean(axis=1)
    s = (x * np.sin(2 * np.pi * freq_hz * t)).mean(axis=1)
    return 2 * (c**2 + s**2)


# --- band powers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "freq, band", [(10.0, "alpha"), (2.0, "delta"), (20.0, "beta"), (6.0, "theta"), (40.0, "gamma")]
)
def test_sine_lands_in_its_band(freq, band):
    bp = band_powers(sine(freq, 2.0) + noise(2.0, 0.5), FS)
    rel = bp.band(band, relative=True)
    assert rel.shape == (N_CH,)
    assert np.all(rel == bp.relative.max(axis=1))
    if band == "alpha":
        assert np.all(rel > 0.6)
    np.testing.assert_allclose(bp.relative.sum(axis=1), 1.0, atol=1e-12)


def scipy_band_powers(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Reference: absolute band powers and total straight from ``scipy.signal.welch``."""
    nperseg = int(max(1, min(x.shape[1], round(fs))))
    freqs, psd = signal.welch(x, fs=fs, window="hann", nperseg=nperseg, detrend="constant", scaling="density")
    df = fs / nperseg
    absolute = np.stack([psd[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) * df for _, lo, hi in BANDS], axis=1)
    lo, hi = TOTAL_POWER_RANGE_HZ
    return absolute, psd[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) * df


def assert_matches_scipy(bp: BandPowers, x: np.ndarray, fs: float, rtol: float = 1e-9) -> None:
    absolute, total = scipy_band_powers(x, fs)
    np.testing.assert_allclose(bp.absolute, absolute, rtol=rtol, atol=0)
    np.testing.assert_allclose(bp.total, total, rtol=rtol, atol=0)
    np.testing.assert_allclose(bp.relative, absolute / total[:, None], rtol=rtol, atol=0)


@pytest.mark.parametrize(
    "fs, n",
    [
        (256.0, 512),  # the live window: 3 segments of 256
        (250.0, 500),  # fs / nperseg not exact in binary: edges must fall in scipy's bins
        (256.0, 700),  # window not a multiple of the segment step (trailing samples unused)
        (200.0, 777),
        (256.0, 200),  # shorter than 1 s: one segment of the whole window
        (255.0, 511),  # odd nperseg: no Nyquist bin
        (1000.0, 2000),
        (125.0, 250),  # Nyquist below the gamma edge
        (64.0, 128),  # Nyquist bin (32 Hz, not doubled) inside the gamma band
    ],
)
def test_band_powers_equal_scipy_welch(fs, n):
    rng = np.random.default_rng(int(fs) + n)
    t = np.arange(n) / fs
    x = rng.normal(0.0, 10.0, (N_CH, n)) + 20.0 * np.sin(2 * np.pi * 10.0 * t) + 5000.0  # with a DC offset
    assert_matches_scipy(band_powers(x, fs), x, fs)


def test_band_powers_accept_non_contiguous_input():
    x = noise(6.0, 10.0, n_ch=8, seed=11)
    view = x[::2, 100:612]  # strided rows and an offset start
    assert not view.flags.c_contiguous
    assert_matches_scipy(band_powers(view, FS), np.ascontiguousarray(view), FS)


def test_absolute_power_matches_sine_power():
    # A sine of amplitude A has power A²/2; Hann leakage stays inside the band for 10 Hz.
    bp = band_powers(sine(10.0, 2.0, amp_uv=20.0), FS)
    np.testing.assert_allclose(bp.band("alpha"), 200.0, rtol=0.02)


def test_band_powers_accepts_one_channel_and_rejects_bad_input():
    assert band_powers(sine(10.0, 1.0, n_ch=1)[0], FS).absolute.shape == (1, len(BAND_NAMES))
    with pytest.raises(ValueError, match="sample_rate_hz"):
        band_powers(sine(10.0, 1.0), 0)
    with pytest.raises(ValueError, match="window"):
        band_powers(np.zeros((2, 2, 2)), FS)


# --- derived scores --------------------------------------------------------------------------


def test_derived_scores_formulas_and_asymmetry_sign():
    x = np.vstack(
        [
            sine(10.0, 2.0, 10.0, 1)[0],
            sine(10.0, 2.0, 20.0, 1)[0],
            sine(6.0, 2.0, 10.0, 1)[0] + sine(20.0, 2.0, 10.0, 1)[0],
        ]
    ) + noise(2.0, 0.5, 3)
    bp = band_powers(x, FS)
    s = derived_scores(bp, ["F3", "F4", "Cz"])
    assert s.frontal_alpha_asymmetry is not None and s.frontal_alpha_asymmetry > 0
    assert s.frontal_alpha_asymmetry == pytest.approx(math.log(4.0), abs=0.05)
    a, b, t = bp.band("alpha"), bp.band("beta"), bp.band("theta")
    assert s.relaxation == pytest.approx(np.mean(a / (a + b)))
    assert s.engagement == pytest.approx(np.mean(b / (a + t)))
    assert s.alpha_theta == pytest.approx(np.mean(a / t))
    assert s.theta_beta == pytest.approx(np.mean(t / b))
    # Reversed montage -> negative; no frontal pair -> None.
    assert derived_scores(bp, ["F4", "F3", "Cz"]).frontal_alpha_asymmetry < 0
    assert derived_scores(bp, ["C3", "C4", "Cz"]).frontal_alpha_asymmetry is None
    with pytest.raises(ValueError, match="channel_names"):
        derived_scores(bp, ["F3"])


def test_derived_scores_array_equals_per_window_scores():
    rng = np.random.default_rng(12)
    names = ["F3", "F4", "O1", "Fp1", "Fp2"]
    stack = rng.uniform(0.1, 50.0, (30, len(names), len(BAND_NAMES)))
    stack[3] = 0.0  # a flat window: every score undefined
    stack[4, 0, :] = 0.0  # one flat channel (F3): left out of ratios and of the F3/F4 pair
    stack[5, :, BAND_NAMES.index("alpha")] = 0.0  # no alpha anywhere: no asymmetry
    arr = derived_scores_array(stack, names)
    assert arr.shape == (30, len(SCORE_NAMES))
    for w in range(stack.shape[0]):
        with np.errstate(invalid="ignore"):
            rel = stack[w] / stack[w].sum(axis=1, keepdims=True)
        one = derived_scores(BandPowers(stack[w], rel, stack[w].sum(axis=1)), names).to_dict()
        for j, name in enumerate(SCORE_NAMES):
            if one[name] is None:
                assert np.isnan(arr[w, j]), (w, name)
            else:
                assert arr[w, j] == pytest.approx(one[name], rel=1e-12), (w, name)
    assert all(
        v is None for v in derived_scores(BandPowers(stack[3], stack[3], stack[3][:, 0]), names).to_dict().values()
    )
    # Spelled out for one window, as the formulas in derived_scores' docstring read.
    a, b = (stack[0][:, BAND_NAMES.index(k)] for k in ("alpha", "beta"))
    assert arr[0, 0] == pytest.approx(np.mean(a / (a + b)), rel=1e-12)
    assert arr[0, 4] == pytest.approx(np.mean([math.log(a[1] / a[0]), math.log(a[4] / a[3])]), rel=1e-12)
    np.testing.assert_array_equal(derived_scores_array(stack[0], names), arr[0])


def test_derived_scores_skip_flat_channels():
    x = np.vstack([sine(10.0, 2.0, 10.0, 1)[0] + noise(2.0, 1.0, 1)[0], np.zeros(512)])
    s = derived_scores(band_powers(x, FS), ["O1", "O2"])
    assert s.relaxation is not None and 0 < s.relaxation <= 1
    assert derived_scores(band_powers(np.zeros((2, 512)), FS), ["O1", "O2"]).alpha_theta is None


# --- streaming filter ------------------------------------------------------------------------


def test_notch_removes_mains_keeps_alpha():
    x = sine(10.0, 10.0, 20.0) + sine(50.0, 10.0, 50.0)
    f = StreamingFilter(FS, notch_hz=50, bandpass_hz=(1.0, 45.0))
    y = f.process(x)
    settled_x, settled_y = x[:, 5 * 256 :], y[:, 5 * 256 :]
    drop_db = 10 * np.log10(tone_power(settled_x, 50.0) / tone_power(settled_y, 50.0))
    assert np.all(drop_db > 20), drop_db
    keep = tone_power(settled_y, 10.0) / tone_power(settled_x, 10.0)
    np.testing.assert_allclose(keep, 1.0, atol=0.05)


@pytest.mark.parametrize("initial_state", ["step", "zeros"])
def test_chunked_filtering_equals_one_shot(initial_state):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 30, (N_CH, 3000)) + 5000.0  # with a DC offset
    one = StreamingFilter(FS, 60, (0.5, 40.0), initial_state=initial_state).process(x)
    f = StreamingFilter(FS, 60, (0.5, 40.0), initial_state=initial_state)
    sizes = [1, 0, 7, 256, 3, 1000, 13]
    parts, i, k = [], 0, 0
    while i < x.shape[1]:
        n = sizes[k % len(sizes)]
        parts.append(f.process(x[:, i : i + n]))
        i += n
        k += 1
    np.testing.assert_allclose(np.concatenate(parts, axis=1), one, atol=1e-9, rtol=0)
    f.reset()
    np.testing.assert_allclose(f.process(x), one, atol=1e-9, rtol=0)


def test_zero_state_matches_plain_sosfilt():
    from scipy import signal

    x = noise(4.0, 10.0)
    f = StreamingFilter(FS, 50, (1.0, 45.0), initial_state="zeros")
    np.testing.assert_allclose(f.process(x), signal.sosfilt(f.sos, x, axis=-1), atol=1e-12)


def test_no_filters_is_identity_and_channel_count_is_checked():
    x = noise(1.0)
    f = StreamingFilter(FS)
    np.testing.assert_array_equal(f.process(x), x)
    g = StreamingFilter(FS, 50)
    g.process(x)
    with pytest.raises(ValueError, match="channels"):
        g.process(x[:2])


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(sample_rate_hz=80.0, notch_hz=50), "notch_hz"),
        (dict(sample_rate_hz=FS, notch_hz=55), "notch_hz"),
        (dict(sample_rate_hz=FS, bandpass_hz=(30.0, 10.0)), "bandpass_hz"),
        (dict(sample_rate_hz=FS, bandpass_hz=(10.0, 10.0)), "bandpass_hz"),
        (dict(sample_rate_hz=FS, bandpass_hz=(1.0, 128.0)), "bandpass_hz"),
        (dict(sample_rate_hz=FS, bandpass_hz=(0.0, 40.0)), "bandpass_hz"),
        (dict(sample_rate_hz=FS, bandpass_hz=(1.0, 40.0), order=0), "order"),
        (dict(sample_rate_hz=0.0), "sample_rate_hz"),
        (dict(sample_rate_hz=FS, initial_state="ones"), "initial_state"),
    ],
)
def test_filter_rejects_bad_parameters(kwargs, word):
    with pytest.raises(ValueError, match=word):
        StreamingFilter(**kwargs)


# --- sliding band powers ---------------------------------------------------------------------


def test_sliding_band_powers_equal_offline_welch():
    x = sine(10.0, 6.0) + noise(6.0, 5.0, seed=3)
    s = SlidingBandPowers(FS, N_CH, window_s=2.0, hop_s=0.25)
    got = []
    rng = np.random.default_rng(4)
    i = 0
    while i < x.shape[1]:
        n = int(rng.integers(0, 100))
        got.extend(s.feed(x[:, i : i + n]))
        i += n
    win, hop = 512, 64
    expected_ends = list(range(win, x.shape[1] + 1, hop))
    assert [bp.window_end_sample for bp in got] == expected_ends
    for bp in got:
        ref = band_powers(x[:, bp.window_end_sample - win : bp.window_end_sample], FS)
        np.testing.assert_allclose(bp.absolute, ref.absolute, atol=1e-9, rtol=0)
        np.testing.assert_allclose(bp.relative, ref.relative, atol=1e-9, rtol=0)
    # A single huge chunk gives the same windows.
    s.reset()
    assert [b.window_end_sample for b in s.feed(x)] == expected_ends


def feed_in_chunks(s: SlidingBandPowers, x: np.ndarray, sizes) -> list[BandPowers]:
    out, i, k = [], 0, 0
    while i < x.shape[1]:
        n = sizes[k % len(sizes)]
        out.extend(s.feed(x[:, i : i + n]))
        i += n
        k += 1
    return out


@pytest.mark.parametrize(
    "window_s, hop_s",
    [
        (2.0, 0.25),  # live settings: segments shared by three windows
        (2.0, 0.3),  # hop does not divide the segment step: segments shared irregularly
        (0.5, 0.1),  # window under 1 s: one segment per window
        (1.0, 1.5),  # hop longer than the window: gaps between windows
        (3.0, 1 / 256),  # one-sample hop
    ],
)
def test_sliding_equals_scipy_welch_whatever_the_chunking(window_s, hop_s):
    seconds = 9.0
    x = sine(10.0, seconds) + noise(seconds, 5.0, seed=7) + 300.0
    win, hop = int(round(window_s * FS)), int(round(hop_s * FS))
    expected_ends = list(range(win, x.shape[1] + 1, hop))
    runs = {
        "one chunk": SlidingBandPowers(FS, N_CH, window_s, hop_s).feed(x),
        "odd sizes": feed_in_chunks(SlidingBandPowers(FS, N_CH, window_s, hop_s), x, [1, 0, 7, 256, 3, 1000, 13]),
        "1 s": feed_in_chunks(SlidingBandPowers(FS, N_CH, window_s, hop_s), x, [256]),
    }
    reference = runs["one chunk"]
    assert [bp.window_end_sample for bp in reference] == expected_ends
    for bp in reference[:: max(1, len(reference) // 40)]:
        end = bp.window_end_sample
        assert_matches_scipy(bp, x[:, end - win : end], FS)
    for name, got in runs.items():
        assert [bp.window_end_sample for bp in got] == expected_ends, name
        for a, b in zip(got, reference, strict=True):
            np.testing.assert_allclose(a.absolute, b.absolute, rtol=1e-12, atol=0, err_msg=name)
            np.testing.assert_allclose(a.total, b.total, rtol=1e-12, atol=0, err_msg=name)


def test_sliding_batches_beyond_the_batch_limit_and_resets():
    # One chunk completing more windows than one batch holds, then a reset mid-stream.
    n_windows = SLIDING_BATCH_MAX_WINDOWS + 37
    x = noise(2.0 + n_windows * 0.25, 8.0, n_ch=3, seed=9)
    s = SlidingBandPowers(FS, 3)
    whole = s.feed(x)
    assert len(whole) == n_windows + 1
    for bp in whole[SLIDING_BATCH_MAX_WINDOWS - 2 : SLIDING_BATCH_MAX_WINDOWS + 2]:
        end = bp.window_end_sample
        assert_matches_scipy(bp, x[:, end - 512 : end], FS)
    s.reset()
    assert s.samples_seen == 0
    assert s.feed(x[:, :511]) == []
    again = s.feed(x[:, 511:2000])
    assert [bp.window_end_sample for bp in again] == [bp.window_end_sample for bp in whole[: len(again)]]
    for a, b in zip(again, whole, strict=False):
        np.testing.assert_allclose(a.absolute, b.absolute, rtol=1e-12, atol=0)


def test_sliding_rejects_bad_parameters():
    with pytest.raises(ValueError, match="hop_s"):
        SlidingBandPowers(FS, 2, hop_s=0)
    with pytest.raises(ValueError, match="window_s"):
        SlidingBandPowers(FS, 2, window_s=-1)
    with pytest.raises(ValueError, match="n_channels"):
        SlidingBandPowers(FS, 0)
    with pytest.raises(ValueError, match="channels"):
        SlidingBandPowers(FS, 2).feed(noise(1.0, n_ch=3))


# --- quality ---------------------------------------------------------------------------------


def test_quality_flat_railed_noisy_good():
    n = 512
    good = sine(10.0, 2.0, 20.0, 1)[0] + noise(2.0, 5.0, 1)[0]
    flat = np.full(n, 1234.0) + noise(2.0, 0.01, 1, seed=5)[0]
    railed_abs = np.full(n, 187_500.0)
    clipped = np.clip(sine(3.0, 2.0, 400.0, 1)[0], -100.0, 100.0)  # plateaus at ±100 µV
    noisy_rms = noise(2.0, 500.0, 1, seed=6)[0]
    mains = good + sine(50.0, 2.0, 60.0, 1)[0]
    x = np.vstack([good, flat, railed_abs, clipped, noisy_rms, mains])
    statuses = [r.status for r in assess_quality(x, FS, line_hz=50.0)]
    assert statuses == [
        ChannelQuality.GOOD,
        ChannelQuality.FLAT,
        ChannelQuality.RAILED,
        ChannelQuality.RAILED,
        ChannelQuality.NOISY,
        ChannelQuality.NOISY,
    ]
    # Without the line test the mains channel (RMS ~46 µV) passes.
    assert assess_quality(x, FS)[5].status == ChannelQuality.GOOD
    assert ChannelQuality.GOOD.value == "good"


def test_quality_rejects_bad_input():
    with pytest.raises(ValueError, match="line_hz"):
        assess_quality(noise(1.0), FS, line_hz=200.0)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        assess_quality(noise(1.0), -1)


# --- epochs ----------------------------------------------------------------------------------


def run_epocher(seconds: float, overlap_s: float, chunk: int = 37, t0: float = 1_700_000_000.0):
    x = sine(10.0, seconds) + noise(seconds, 2.0)
    sliding = SlidingBandPowers(FS, N_CH)
    ep = Epocher(FS, 5.0, overlap_s, channel_names=["F3", "F4", "O1", "O2"])
    out = []
    for i in range(0, x.shape[1], chunk):
        part = x[:, i : i + chunk]
        out.extend(ep.feed(part, t0 + i / FS, sliding.feed(part)))
    return out


@pytest.mark.parametrize(
    "seconds, overlap_s", [(30.0, 0.0), (30.0, 2.5), (23.0, 4.5), (17.3, 1.0), (4.9, 0.0), (5.0, 0.0)]
)
def test_epoch_count_and_timestamps(seconds, overlap_s):
    t0 = 1_700_000_000.0
    epochs = run_epocher(seconds, overlap_s, t0=t0)
    expected = max(0, math.floor((seconds - 5.0) / (5.0 - overlap_s) + 1e-9) + 1)
    assert len(epochs) == expected
    step_ms = (5.0 - overlap_s) * 1000.0
    for k, e in enumerate(epochs):
        assert e.n_samples == 1280
        assert e.start_utc_ms == round(t0 * 1000 + k * step_ms)
        assert e.end_utc_ms - e.start_utc_ms == 5000
    for e in epochs:
        # Windows (2 s, hop 64 samples) end at 512, 576, ...; those in (start, end] count.
        ends = [k for k in range(512, e.first_sample + 1281, 64) if e.first_sample < k <= e.first_sample + 1280]
        assert e.metrics is not None and e.metrics.n_windows == len(ends)
        if e.first_sample >= 512:
            assert len(ends) == 20  # 5 s / 0.25 s


def test_epoch_metrics_are_means_of_window_powers():
    epochs = run_epocher(12.0, 0.0)
    m = epochs[1].metrics
    assert m is not None
    assert np.all(m.relative[:, BAND_NAMES.index("alpha")] > 0.6)
    assert set(m.scores) >= {"relaxation", "engagement", "alpha_theta", "theta_beta", "frontal_alpha_asymmetry"}
    assert m.scores["relaxation"] > 0.5
    # First epoch: windows end at samples 512..1280 -> 13 windows.
    assert epochs[0].metrics.n_windows == 13
    assert isinstance(m.to_dict()["absolute"]["alpha"], list)


def test_epoch_scores_are_means_of_per_window_scores():
    names = ["F3", "F4", "O1", "O2"]
    seconds = 16.0
    x = sine(10.0, seconds) * np.array([[1.0], [2.0], [0.5], [1.0]]) + noise(seconds, 3.0)
    x[3] = 0.0  # a flat channel
    sliding = SlidingBandPowers(FS, N_CH)
    ep = Epocher(FS, 5.0, 2.5, channel_names=names)
    windows, epochs = [], []
    for i in range(0, x.shape[1], 256):
        part = x[:, i : i + 256]
        new = sliding.feed(part)
        windows.extend(new)
        epochs.extend(ep.feed(part, 1000.0 + i / FS, new))
    assert len(epochs) == 5
    for e in epochs:
        members = [bp for bp in windows if e.first_sample < bp.window_end_sample <= e.first_sample + e.n_samples]
        assert e.metrics is not None and e.metrics.n_windows == len(members)
        np.testing.assert_allclose(e.metrics.absolute, np.mean([bp.absolute for bp in members], axis=0), rtol=1e-12)
        per_window = [derived_scores(bp, names).to_dict() for bp in members]
        for name in SCORE_NAMES:
            vals = [s[name] for s in per_window if s[name] is not None]
            assert e.metrics.scores[name] == pytest.approx(float(np.mean(vals)), rel=1e-12)


def test_epocher_honours_timestamp_gaps_and_windows_without_index():
    ep = Epocher(FS, 5.0, 0.0)
    x = noise(5.0)
    bp = band_powers(x[:, :512], FS)
    assert bp.window_end_sample is None
    assert ep.feed(x[:, :640], 100.0, [bp]) == []
    # Second half arrives after a 10 s gap; the epoch still starts at the first sample.
    (e,) = ep.feed(x[:, 640:], 200.0)
    assert e.start_utc_ms == 100_000 and e.metrics is not None and e.metrics.n_windows == 1
    assert e.metrics.scores == {}
    (e2,) = ep.feed(x, 300.0)
    assert e2.start_utc_ms == 300_000 and e2.metrics is None


@pytest.mark.parametrize("overlap_s", [-0.1, 4.6, 5.0])
def test_epocher_rejects_bad_overlap(overlap_s):
    with pytest.raises(ValueError, match="overlap_s"):
        Epocher(FS, 5.0, overlap_s)


def test_band_powers_dataclass_helpers():
    bp = band_powers(sine(10.0, 2.0), FS)
    assert isinstance(bp, BandPowers)
    d = bp.to_dict()
    assert set(d["relative"]) == set(BAND_NAMES) and len(d["absolute"]["alpha"]) == N_CH
