"""Synthetic EEG and its embeddings, for the EEG-search benchmarks; and the real test recording cut into epochs.

Import from a benchmark (the repository root on ``sys.path``)::

    from bench.eeg_corpus import embedding_corpus, real_recording_epochs, synthetic_eeg

What the synthetic EEG is
-------------------------
:func:`synthetic_eeg` makes one continuous *session* of consecutive epochs of one synthetic
subject. Each epoch and channel is a Gaussian process drawn in the frequency domain (random
complex Fourier coefficients shaped by a target power spectral density, then one inverse real
FFT for the whole batch), so its expected spectrum is exactly the target and nothing is looped
per epoch. The target PSD, µV²/Hz, is the sum of

- an aperiodic ``1/f^k`` background, ``BACKGROUND_PSD_AT_1HZ * gain * (1.5 / (f + 0.5))^k`` (about
  20 µV²/Hz at 1 Hz, 1 µV²/Hz at 10 Hz: resting scalp EEG), exponent ``k`` 1.1-1.7 per subject;
- three oscillations, Gaussian bumps in frequency holding a given power: theta (6 Hz, 1 Hz
  wide), alpha (the subject's alpha frequency, 8.5-11.5 Hz, 0.8 Hz wide) and beta (20 Hz, 4 Hz
  wide);
- a little 50 Hz mains (0.5-3 µV), on one bin.

Their amplitudes follow the *state* of the session: three latent states, drowsy (theta and
delta up, alpha weak and 1 Hz slower, steeper 1/f), relaxed (strong alpha) and focused (beta
up, alpha weak), mixed with softmax weights of three latent values that do a slow random walk
over consecutive epochs (an Ornstein-Uhlenbeck process with a 2 minute time constant at 5 s
epochs), plus a 10 % per-epoch jitter. Channels are placed front (0) to back (1): alpha grows
towards the back, theta and blinks are frontal, beta slightly frontal, each channel with its
own random gain per component and a DC offset. Occasional artefacts are added in the time
domain: eye blinks (8 % of epochs, 80-200 µV, frontal), muscle (EMG) bursts (4 %, 10-30 µV of
high-frequency noise over 0.5-2 s) and electrode pops (1 %, one channel, a 50-150 µV step
decaying over 0.3 s).

It is "realistic-ish": band powers, 1/f slope, alpha peaks and their drift over a session are
in the range of real recordings; spatial correlation between channels (volume conduction) is
not modelled, since the spectral encoder pools per-channel features anyway.

How the 1 M-vector corpus is made
---------------------------------
:func:`embedding_corpus` encodes ``n_vectors`` synthetic epochs with the built-in
:class:`~miso_runtime.neuro.embedding.spectral_encoder.SpectralEncoder`. To be fast enough for
a million vectors it uses 4 channels at 128 Hz (5 s epochs, 640 samples per channel) instead
of a 16-channel 256 Hz montage: the embedding is independent of the channel count and the
encoder's 0.5-45 Hz range is below 128 Hz's Nyquist frequency, so these are genuine encoder
outputs of synthetic EEG, only with the across-channel spread estimated from 4 channels. The
corpus is many 1-hour sessions (720 epochs each) of different synthetic subjects; session
``i`` is seeded by ``(seed, i)``, so the corpus is the same whatever the number of worker
processes, which encode whole sessions in parallel (one per CPU core by default) and return
their vectors; only the float32 vectors (1 M x dim x 4 bytes, 128 MB at dim 32) are kept.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import scipy.fft
from scipy import signal

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from miso_runtime.neuro.embedding.spectral_encoder import SpectralEncoder  # noqa: E402

log = logging.getLogger(__name__)

#: The real test recording (2 channels, 200 Hz, 6 min of resting EEG, eyes open).
REAL_RECORDING = REPO_ROOT / "tests" / "data" / "resting_EO_200Hz_raw.fif"

#: Aperiodic background PSD at 1 Hz, µV²/Hz, before the channel gain.
BACKGROUND_PSD_AT_1HZ = 20.0
#: Knee of the background, Hz: ``1 / (f + knee)^k`` stays finite at 0 Hz.
BACKGROUND_KNEE_HZ = 0.5
#: Oscillations: (centre Hz, width Hz = Gaussian sigma); alpha's centre is the subject's.
THETA_HZ, THETA_WIDTH_HZ = 6.0, 1.0
ALPHA_WIDTH_HZ = 0.8
BETA_HZ, BETA_WIDTH_HZ = 20.0, 4.0
#: Per state (drowsy, relaxed, focused): RMS amplitude, µV, of theta, alpha, beta; delta
#: (background) gain; change of the 1/f exponent; shift of the alpha frequency, Hz.
STATE_THETA_UV = np.array([6.0, 2.5, 3.0])
STATE_ALPHA_UV = np.array([5.0, 16.0, 4.0])
STATE_BETA_UV = np.array([1.5, 2.0, 4.5])
STATE_BACKGROUND_GAIN = np.array([1.6, 1.0, 0.9])
STATE_EXPONENT_SHIFT = np.array([0.3, 0.0, -0.2])
STATE_ALPHA_SHIFT_HZ = np.array([-1.0, 0.0, 0.3])
#: Random walk of the state: time constant in epochs, and spread of the latent values.
STATE_TIME_CONSTANT_EPOCHS = 24.0
STATE_LATENT_STD = 1.5
#: Per-epoch multiplicative jitter of each amplitude (log-normal sigma).
EPOCH_JITTER = 0.1
#: Share of epochs with a blink, an EMG burst, an electrode pop.
BLINK_RATE, EMG_RATE, POP_RATE = 0.08, 0.04, 0.01
#: Epochs per synthetic session of the corpus (1 h of 5 s epochs).
CORPUS_SESSION_EPOCHS = 720
#: Montage of the corpus epochs (see the module docstring).
CORPUS_CHANNELS, CORPUS_RATE_HZ, CORPUS_EPOCH_S = 4, 128.0, 5.0


def _bump(freqs: np.ndarray, centre_hz: np.ndarray, width_hz: float) -> np.ndarray:
    """Gaussian PSD shape of unit power (integral 1 over Hz), ``(n_centres, n_freqs)``: one row per centre."""
    centre = np.asarray(centre_hz, dtype=np.float64).reshape(-1, 1)
    return np.exp(-0.5 * ((freqs - centre) / width_hz) ** 2) / (width_hz * math.sqrt(2.0 * math.pi))


def _state_weights(rng: np.random.Generator, n_epochs: int) -> np.ndarray:
    """Softmax weights ``(n_epochs, 3)`` of the drowsy/relaxed/focused states, slowly walking over epochs.

    An Ornstein-Uhlenbeck process per latent value (AR(1) with ``rho = exp(-1 / tau)``), started
    from its stationary distribution and run by one :func:`scipy.signal.lfilter` call.
    """
    rho = math.exp(-1.0 / STATE_TIME_CONSTANT_EPOCHS)
    drive = rng.standard_normal((n_epochs, 3)) * (STATE_LATENT_STD * math.sqrt(1.0 - rho * rho))
    start = rng.standard_normal(3) * STATE_LATENT_STD
    latent, _ = signal.lfilter([1.0], [1.0, -rho], drive, axis=0, zi=(start * rho)[np.newaxis, :])
    weights = np.exp(latent - latent.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def synthetic_eeg(
    n_epochs: int,
    n_channels: int = 16,
    sample_rate_hz: float = 256.0,
    epoch_s: float = 5.0,
    seed: int | np.random.SeedSequence = 0,
    dtype: type = np.float64,
) -> np.ndarray:
    """One synthetic session of consecutive EEG epochs (see the module docstring for the model).

    Parameters
    ----------
    n_epochs : int
        Consecutive epochs of the session (the state walks from one to the next).
    n_channels : int
        Channels, placed front to back.
    sample_rate_hz : float
        Sample rate, Hz.
    epoch_s : float
        Epoch length, seconds (``round(epoch_s * fs)`` samples).
    seed : int or SeedSequence
        Seed of everything random: the subject (alpha frequency, 1/f exponent, channel gains),
        its state walk, noise and artefacts. Same seed, same data.
    dtype : numpy dtype
        Output dtype (float32 halves the memory of big batches).

    Returns
    -------
    ndarray, shape (n_epochs, n_channels, n_samples)
        EEG in µV.
    """
    rng = np.random.default_rng(seed)
    n_samples = int(round(epoch_s * sample_rate_hz))
    freqs = scipy.fft.rfftfreq(n_samples, 1.0 / sample_rate_hz)
    pos = np.linspace(0.0, 1.0, n_channels) if n_channels > 1 else np.array([0.5])

    # The subject: alpha frequency, 1/f exponent and per-channel gains of every component.
    alpha_hz = rng.uniform(8.5, 11.5)
    exponent = rng.uniform(1.1, 1.7)
    gain = np.exp(rng.normal(0.0, 0.25, size=(4, n_channels)))
    g_background = gain[0] * 0.8 + 0.2
    g_theta = gain[1] * (1.3 - 0.7 * pos)
    g_alpha = gain[2] * (0.3 + 1.2 * pos)
    g_beta = gain[3] * (1.1 - 0.3 * pos)
    offset_uv = rng.normal(0.0, 20.0, size=(n_channels, 1))

    # The state of each epoch, and the amplitudes it implies (with a small per-epoch jitter).
    w = _state_weights(rng, n_epochs)
    jitter = np.exp(rng.normal(0.0, EPOCH_JITTER, size=(4, n_epochs)))
    theta_uv = (w @ STATE_THETA_UV) * jitter[0]
    alpha_uv = (w @ STATE_ALPHA_UV) * jitter[1]
    beta_uv = (w @ STATE_BETA_UV) * jitter[2]
    background = (w @ STATE_BACKGROUND_GAIN) * jitter[3]
    k = exponent + w @ STATE_EXPONENT_SHIFT
    alpha_centre = alpha_hz + w @ STATE_ALPHA_SHIFT_HZ

    # Target PSD (n_epochs, n_channels, n_freqs), µV²/Hz: the sum over components of an
    # epoch spectrum (n_epochs, n_freqs) times a channel gain (n_channels,), one einsum.
    log_f = np.log(freqs + BACKGROUND_KNEE_HZ) - math.log(1.0 + BACKGROUND_KNEE_HZ)
    components = np.empty((4, n_epochs, freqs.shape[0]), dtype=np.float32)
    components[0] = np.exp(-k[:, None] * log_f) * (BACKGROUND_PSD_AT_1HZ * background)[:, None]
    components[1] = (theta_uv**2)[:, None] * _bump(freqs, np.array([THETA_HZ]), THETA_WIDTH_HZ)
    components[2] = (alpha_uv**2)[:, None] * _bump(freqs, alpha_centre, ALPHA_WIDTH_HZ)
    components[3] = (beta_uv**2)[:, None] * _bump(freqs, np.array([BETA_HZ]), BETA_WIDTH_HZ)
    gains = np.stack([g_background, g_theta**2, g_alpha**2, g_beta**2]).astype(np.float32)
    psd = np.einsum("jef,jc->ecf", components, gains)
    psd[..., 0] = 0.0

    # Random complex Gaussian coefficients with E|X_k|^2 = S_k fs N / 2 (so the one-sided PSD
    # is S), by Box-Muller from uniforms (twice as fast as numpy's normals here: Rayleigh
    # modulus, uniform phase), then one inverse FFT for everything, in float32.
    uniform = rng.random((2,) + psd.shape, dtype=np.float32)
    modulus = np.sqrt(psd * np.float32(sample_rate_hz * n_samples / 2.0) * -np.log1p(-uniform[0]))
    del psd
    phase = uniform[1] * np.float32(2.0 * math.pi)
    spectrum = np.empty(modulus.shape, dtype=np.complex64)
    spectrum.real = modulus * np.cos(phase)
    spectrum.imag = modulus * np.sin(phase)
    del modulus, phase, uniform
    mains_bin = int(round(50.0 * n_samples / sample_rate_hz))
    if 0 < mains_bin < freqs.shape[0] - 1:
        mains_uv = rng.uniform(0.5, 3.0, size=(1, n_channels))
        phase = rng.uniform(0.0, 2.0 * math.pi, size=(n_epochs, n_channels))
        spectrum[..., mains_bin] = mains_uv * (n_samples / 2.0) * np.exp(1j * phase)
    x = scipy.fft.irfft(spectrum, n=n_samples, axis=-1)
    del spectrum
    x += offset_uv.astype(np.float32)
    _add_artefacts(rng, x, pos, sample_rate_hz)
    return x.astype(dtype, copy=False)


def _add_artefacts(rng: np.random.Generator, x: np.ndarray, pos: np.ndarray, sample_rate_hz: float) -> None:
    """Add blinks, EMG bursts and electrode pops in place to a few random epochs of ``x`` (µV)."""
    n_epochs, n_channels, n_samples = x.shape
    t = np.arange(n_samples) / sample_rate_hz
    duration = n_samples / sample_rate_hz

    idx = np.flatnonzero(rng.random(n_epochs) < BLINK_RATE)
    if idx.size:
        centre = rng.uniform(0.0, duration, size=(idx.size, 1))
        pulse = np.exp(-0.5 * ((t - centre) / 0.08) ** 2) * rng.uniform(80.0, 200.0, size=(idx.size, 1))
        x[idx] += pulse[:, np.newaxis, :] * ((1.0 - pos) ** 2 + 0.05)[np.newaxis, :, np.newaxis]

    idx = np.flatnonzero(rng.random(n_epochs) < EMG_RATE)
    if idx.size:
        start = rng.uniform(0.0, duration, size=(idx.size, 1))
        length = rng.uniform(0.5, 2.0, size=(idx.size, 1))
        inside = (t >= start) & (t < start + length)
        white = rng.standard_normal((idx.size, n_channels, n_samples + 1))
        burst = np.diff(white, axis=-1) * rng.uniform(10.0, 30.0, size=(idx.size, 1, 1)) / math.sqrt(2.0)
        x[idx] += burst * inside[:, np.newaxis, :] * rng.uniform(0.3, 1.0, size=(1, n_channels, 1))

    idx = np.flatnonzero(rng.random(n_epochs) < POP_RATE)
    if idx.size:
        channel = rng.integers(0, n_channels, size=idx.size)
        start = rng.uniform(0.0, duration, size=(idx.size, 1))
        step = np.where(t >= start, np.exp(-np.maximum(t - start, 0.0) / 0.3), 0.0)
        x[idx, channel] += step * rng.uniform(50.0, 150.0, size=(idx.size, 1)) * rng.choice([-1.0, 1.0], (idx.size, 1))


def _keep_freed_memory() -> None:
    """Worker initializer: let glibc's malloc keep freed memory instead of returning it to the OS.

    Why: every session allocates and frees arrays of several MB; by default glibc gives each
    back (``mmap``/trim) and the next allocation faults its pages in again, which cost a
    fifth of the corpus' CPU time as system time. With thresholds of 256 MB / 1 GB a worker's
    heap is reused (it stays at a few hundred MB). No-op where glibc is not the C library.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        log.debug("mallopt not available; corpus workers keep the default allocator settings")


def _corpus_sessions(seed: int, first: int, count: int) -> np.ndarray:
    """Embeddings of sessions ``first .. first + count - 1`` of the corpus, ``(count * 720, dim)`` float32."""
    encoder = SpectralEncoder()
    out = []
    for i in range(first, first + count):
        eeg = synthetic_eeg(
            CORPUS_SESSION_EPOCHS,
            CORPUS_CHANNELS,
            CORPUS_RATE_HZ,
            CORPUS_EPOCH_S,
            seed=np.random.SeedSequence([seed, i]),
        )
        out.append(encoder.encode(eeg, CORPUS_RATE_HZ))
    return np.concatenate(out)


def embedding_corpus(n_vectors: int, seed: int = 0, workers: int | None = None) -> np.ndarray:
    """Embeddings of ``n_vectors`` synthetic EEG epochs: the corpus of the EEG-search benchmarks.

    Parameters
    ----------
    n_vectors : int
        Vectors wanted (whole 720-epoch sessions are made; the last is cut).
    seed : int
        Corpus seed; session ``i`` is seeded by ``(seed, i)``, so the result does not depend on
        ``workers``.
    workers : int, optional
        Processes encoding sessions in parallel; default one per CPU core (1 for small corpora).

    Returns
    -------
    ndarray, shape (n_vectors, dim), float32
        Rows in session order, consecutive epochs of a session in consecutive rows.

    Notes
    -----
    How it is made and why it is fast: see the module docstring. About 75 µs of CPU per
    vector (generation about half, encoding half), so 1 M vectors take about 40 s on two free
    cores (logged at INFO); each worker holds a few hundred MB.
    """
    started = time.perf_counter()
    n_sessions = -(-n_vectors // CORPUS_SESSION_EPOCHS)
    if workers is None:
        workers = os.cpu_count() or 1
    workers = max(1, min(workers, n_sessions // 8 or 1))
    per_task = 8
    tasks = [(seed, first, min(per_task, n_sessions - first)) for first in range(0, n_sessions, per_task)]
    out = np.empty((n_sessions * CORPUS_SESSION_EPOCHS, SpectralEncoder().dim), dtype=np.float32)
    rows = 0
    if workers == 1:
        results = (_corpus_sessions(*task) for task in tasks)
        for block in results:
            out[rows : rows + block.shape[0]] = block
            rows += block.shape[0]
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_keep_freed_memory) as pool:
            for block in pool.map(_corpus_sessions, *zip(*tasks, strict=True)):
                out[rows : rows + block.shape[0]] = block
                rows += block.shape[0]
    log.info(
        "embedding corpus: %d vectors from %d sessions in %.1f s (%d workers)",
        n_vectors,
        n_sessions,
        time.perf_counter() - started,
        workers,
    )
    return out[:n_vectors]


def real_recording_epochs(path: Path = REAL_RECORDING, epoch_s: float = 5.0) -> tuple[np.ndarray, float]:
    """The real test recording cut into consecutive non-overlapping epochs.

    Trailing samples where every channel is exactly zero (the recording's last 8 s) are dropped
    first, then the tail that does not fill a whole epoch.

    Parameters
    ----------
    path : Path
        An MNE FIF file.
    epoch_s : float
        Epoch length, seconds.

    Returns
    -------
    epochs : ndarray, shape (n_epochs, n_channels, n_samples)
        EEG in µV.
    sample_rate_hz : float
        Its sample rate, Hz.
    """
    import mne

    raw = mne.io.read_raw_fif(path, preload=True, verbose="error")
    data = raw.get_data() * 1e6
    rate = float(raw.info["sfreq"])
    nonzero = np.flatnonzero(np.any(data != 0.0, axis=0))
    data = data[:, : nonzero[-1] + 1] if nonzero.size else data[:, :0]
    n = int(round(epoch_s * rate))
    n_epochs = data.shape[1] // n
    epochs = data[:, : n_epochs * n].reshape(data.shape[0], n_epochs, n).transpose(1, 0, 2)
    return np.ascontiguousarray(epochs), rate


def real_recording_embeddings(path: Path = REAL_RECORDING, epoch_s: float = 5.0) -> np.ndarray:
    """Embeddings ``(n_epochs, dim)`` float32 of :func:`real_recording_epochs` by the built-in encoder."""
    epochs, rate = real_recording_epochs(path, epoch_s)
    return SpectralEncoder().encode(epochs, rate)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    t0 = time.perf_counter()
    vectors = embedding_corpus(n)
    elapsed = time.perf_counter() - t0
    print(f"{vectors.shape[0]} vectors x {vectors.shape[1]} dims ({vectors.dtype}) in {elapsed:.1f} s")
