"""Tests of the built-in EEG epoch encoder (miso_runtime.neuro.embedding.spectral_encoder).

Signals are EEG-like (1/f noise plus oscillations, made here) and the real 2-channel resting
recording in tests/data; no network, runs in a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from miso_runtime.constants import SPECTRAL_FEATURE_CENTER, SPECTRAL_FEATURE_SCALE
from miso_runtime.neuro.embedding.spectral_encoder import (
    DIM_NAMES,
    SPECTRAL_ENCODER_NAME,
    SpectralEncoder,
    _plan,
    _welch_psd,
)

FS = 256.0
EPOCH_S = 5.0
REAL = Path(__file__).parent / "data" / "resting_EO_200Hz_raw.fif"


def eeg_like(
    n_epochs: int,
    n_channels: int = 8,
    fs: float = FS,
    seconds: float = EPOCH_S,
    peak_hz: float | None = 10.0,
    peak_uv: float = 20.0,
    seed: int = 0,
) -> np.ndarray:
    """Pink (1/f) noise of ~10 µV RMS plus a sine at ``peak_hz`` with random phase per epoch/channel, µV."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fs))
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    shape = np.zeros_like(freqs)
    shape[1:] = 1.0 / np.sqrt(freqs[1:])
    coeffs = (
        rng.standard_normal((n_epochs, n_channels, freqs.size))
        + 1j * rng.standard_normal((n_epochs, n_channels, freqs.size))
    ) * shape
    x = np.fft.irfft(coeffs, n=n, axis=-1)
    x *= 10.0 / x.std(axis=-1, keepdims=True)
    if peak_hz is not None:
        t = np.arange(n) / fs
        phase = rng.uniform(0, 2 * np.pi, (n_epochs, n_channels, 1))
        x += peak_uv * np.sin(2 * np.pi * peak_hz * t + phase)
    return x + rng.normal(0.0, 50.0, (1, n_channels, 1))  # DC offsets, as boards deliver


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def feature(vectors: np.ndarray, name: str) -> np.ndarray:
    """De-standardised per-channel-mean feature ``name`` (raw units) of each vector."""
    j = DIM_NAMES.index(name)
    return vectors[:, j].astype(np.float64) * SPECTRAL_FEATURE_SCALE[j] + SPECTRAL_FEATURE_CENTER[j]


@pytest.fixture(scope="module")
def encoder() -> SpectralEncoder:
    return SpectralEncoder()


def test_shape_dtype_name_and_determinism(encoder: SpectralEncoder) -> None:
    x = eeg_like(40, n_channels=16)
    v = encoder.encode(x, FS)
    assert encoder.name == SPECTRAL_ENCODER_NAME == "miso-spectral-v1"
    assert v.shape == (40, encoder.dim) and encoder.dim == len(DIM_NAMES) == 32
    assert v.dtype == np.float32 and np.isfinite(v).all()
    # Not degenerate: the epochs differ (noise), yet every vector is well away from zero.
    assert np.linalg.norm(v, axis=1).min() > 0.5 and v.std(axis=0).max() > 0.01
    # Bit-identical again, one epoch at a time, as a 2-D epoch, and from float32 input of the same values.
    assert np.array_equal(encoder.encode(x, FS), v)
    singles = np.concatenate([encoder.encode(x[i], FS) for i in range(x.shape[0])])
    assert np.array_equal(singles, v)
    assert encoder.encode(x[3], FS).shape == (1, encoder.dim)
    x32 = x.astype(np.float32)
    assert np.array_equal(encoder.encode(x32, FS), encoder.encode(x32.astype(np.float64), FS))


def test_welch_psd_matches_scipy() -> None:
    x = eeg_like(3, n_channels=2)
    plan = _plan(x.shape[-1], FS)
    psd, sane = _welch_psd(x, plan)
    freqs, ref = signal.welch(x, fs=FS, window="hann", nperseg=plan.nperseg, detrend="constant")
    assert sane.all()
    assert np.allclose(freqs[plan.bin_lo : plan.bin_hi], plan.freqs)
    assert np.allclose(psd, ref[..., plan.bin_lo : plan.bin_hi], rtol=1e-4, atol=1e-5)


def test_independent_of_channel_count_and_order(encoder: SpectralEncoder) -> None:
    x = eeg_like(10, n_channels=5, seed=1)
    v = encoder.encode(x, FS)
    doubled = encoder.encode(np.concatenate([x, x], axis=1), FS)
    tripled = encoder.encode(np.concatenate([x, x, x], axis=1), FS)
    shuffled = encoder.encode(x[:, [3, 0, 4, 1, 2]], FS)
    for other in (doubled, tripled, shuffled):
        assert np.abs(other - v).max() < 1e-4
    # ... while a genuinely different montage (other channels) does change it.
    assert np.abs(encoder.encode(x[:, :2], FS) - v).max() > 0.01


def test_gain_changes_only_absolute_power(encoder: SpectralEncoder) -> None:
    """Scaling the signal by 2 (impedance, amplifier gain) moves only the log band powers, by log10(4)."""
    x = eeg_like(5, n_channels=4, seed=2)
    v, v2 = encoder.encode(x, FS), encoder.encode(2.0 * x, FS)
    for name in DIM_NAMES[:5]:
        assert np.allclose(feature(v2, name) - feature(v, name), np.log10(4.0), atol=1e-4)
    assert np.abs(v2[:, 5:] - v[:, 5:]).max() < 1e-4


def test_bad_channels_stay_finite_and_are_left_out(encoder: SpectralEncoder) -> None:
    x = eeg_like(4, n_channels=4, seed=3)
    good = encoder.encode(x[:, :2], FS)
    bad = x.copy()
    bad[:, 2] = 0.0  # flat (disconnected)
    bad[:, 3, 100] = np.nan  # a dropout
    bad[1, 3, :] = np.inf
    v = encoder.encode(bad, FS)
    assert np.isfinite(v).all()
    assert np.abs(v - good).max() < 1e-5
    # All-flat, all-constant (DC only), all-NaN epochs: one defined, finite, non-zero vector.
    n = x.shape[-1]
    flat = encoder.encode(np.zeros((1, 3, n)), FS)
    dc = encoder.encode(np.full((1, 3, n), 1234.5), FS)
    nan = encoder.encode(np.full((1, 3, n), np.nan), FS)
    huge = encoder.encode(np.full((1, 3, n), 1e300), FS)
    assert np.isfinite(flat).all() and np.linalg.norm(flat) > 1.0
    for other in (dc, nan, huge):
        assert np.array_equal(other, flat)


def test_alpha_epoch_closer_to_alpha_than_to_beta(encoder: SpectralEncoder) -> None:
    alpha_a = encoder.encode(eeg_like(1, peak_hz=10.0, seed=10), FS)[0]
    alpha_b = encoder.encode(eeg_like(1, peak_hz=10.0, seed=11), FS)[0]
    beta = encoder.encode(eeg_like(1, peak_hz=20.0, seed=12), FS)[0]
    assert cosine(alpha_a, alpha_b) > 0.95
    assert cosine(alpha_a, alpha_b) - cosine(alpha_a, beta) > 0.3
    # The features mean what the docstring says: the alpha centre of gravity is near 10 Hz.
    assert abs(feature(alpha_a[np.newaxis], "alpha_cog")[0] - 10.0) < 0.5
    assert feature(alpha_a[np.newaxis], "rel_alpha")[0] > 0.5 > feature(beta[np.newaxis], "rel_alpha")[0]


@pytest.mark.parametrize(
    ("fs", "seconds", "n_channels"),
    [(100.0, 2.0, 1), (200.0, 5.0, 2), (250.0, 2.0, 16), (256.0, 5.0, 3), (1000.0, 2.0, 4)],
)
def test_rates_lengths_and_channel_counts(encoder: SpectralEncoder, fs: float, seconds: float, n_channels: int) -> None:
    alpha = encoder.encode(eeg_like(6, n_channels, fs, seconds, peak_hz=10.0, seed=20), fs)
    beta = encoder.encode(eeg_like(6, n_channels, fs, seconds, peak_hz=20.0, seed=21), fs)
    assert alpha.shape == (6, 32) and np.isfinite(alpha).all() and np.isfinite(beta).all()
    assert np.all(feature(alpha, "alpha_cog") > 9.0) and np.all(feature(alpha, "alpha_cog") < 11.0)
    assert np.all(feature(alpha, "rel_alpha") > feature(beta, "rel_alpha"))


def test_rejects_what_it_cannot_encode(encoder: SpectralEncoder) -> None:
    with pytest.raises(ValueError, match="sample_rate_hz"):
        encoder.encode(np.zeros((1, 2, 500)), 50.0)
    with pytest.raises(ValueError, match=">= 2 s"):
        encoder.encode(np.zeros((1, 2, 256)), FS)
    with pytest.raises(ValueError, match="no channels"):
        encoder.encode(np.zeros((1, 0, 1280)), FS)
    with pytest.raises(ValueError, match="shape"):
        encoder.encode(np.zeros(1280), FS)


def real_epochs() -> tuple[np.ndarray, float]:
    """The real recording in 5 s epochs (µV), its last 8 s of zeros left out."""
    mne = pytest.importorskip("mne")
    raw = mne.io.read_raw_fif(REAL, preload=True, verbose="error")
    data = raw.get_data() * 1e6
    fs = float(raw.info["sfreq"])
    data = data[:, : data.shape[1] - int(8 * fs)]
    assert np.all(np.any(data[:, -int(fs) :] != 0, axis=0))  # the zeros are gone
    n = int(EPOCH_S * fs)
    k = data.shape[1] // n
    return data[:, : k * n].reshape(data.shape[0], k, n).transpose(1, 0, 2), fs


def test_real_eeg_neighbours_share_band_profile(encoder: SpectralEncoder) -> None:
    """The 10 cosine-nearest epochs of each real epoch have relative band powers much closer to it than random ones."""
    epochs, fs = real_epochs()
    assert epochs.shape == (70, 2, 1000)
    v = encoder.encode(epochs, fs).astype(np.float64)
    # Reference: relative band powers (delta..gamma) of each channel, scipy Welch, independent of the encoder.
    freqs, psd = signal.welch(epochs, fs=fs, nperseg=int(2 * fs))
    bands = [(0.5, 4.0), (4.0, 8.0), (8.0, 13.0), (13.0, 30.0), (30.0, 45.0)]
    power = np.stack([psd[..., (freqs >= lo) & (freqs < hi)].sum(axis=-1) for lo, hi in bands], axis=-1)
    profile = (power / power.sum(axis=-1, keepdims=True)).reshape(len(epochs), -1)
    dist = np.linalg.norm(profile[:, None, :] - profile[None, :, :], axis=-1)

    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    cos_dist = 1.0 - unit @ unit.T
    np.fill_diagonal(cos_dist, np.inf)
    neighbours = np.argsort(cos_dist, axis=1, kind="stable")[:, :10]
    neighbour_mean = np.take_along_axis(dist, neighbours, axis=1).mean()
    random_mean = dist[~np.eye(len(epochs), dtype=bool)].mean()  # expectation over all other epochs
    ratio = neighbour_mean / random_mean
    print(f"real EEG: neighbour/random relative-band-power distance = {ratio:.3f}")
    # Measured 0.475 (the best any 10-NN can do on this criterion is 0.40, its own nearest neighbours).
    assert ratio < 0.6
