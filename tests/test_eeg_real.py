"""Real EEG (tests/data/resting_EO_200Hz_raw.fif, origin in tests/data/README.md) replayed through
the playback board: the live band powers equal an offline scipy computation of the same windows."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pytest
from scipy import signal

from tests.eeg import GANGLION, PLAYBACK, EventsClient, full_windows, write_recording
from tests.sidecar import Sidecar

FIF = Path(__file__).parent / "data" / "resting_EO_200Hz_raw.fif"
RATE = 200.0
WINDOW = 400  # 2 s
HOP = 50  # 0.25 s
BANDS = {"delta": (0.5, 4), "theta": (4, 8), "alpha": (8, 13), "beta": (13, 30), "gamma": (30, 50)}


def offline_band_powers(eeg_uv: np.ndarray, end: int) -> dict[str, np.ndarray]:
    """scipy's Welch (1 s Hann segments, half overlap) of the 2 s window ending at sample ``end``."""
    freqs, psd = signal.welch(eeg_uv[:, end - WINDOW : end], fs=RATE, nperseg=200, detrend="constant")
    df = freqs[1] - freqs[0]
    return {name: psd[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) * df for name, (lo, hi) in BANDS.items()}


def live_filter(eeg_uv: np.ndarray) -> np.ndarray:
    """The live defaults written out with scipy: 50 Hz notch (Q 30), 4th-order 1-45 Hz band-pass,
    causal, starting from a steady state at the first sample."""
    notch = signal.tf2sos(*signal.iirnotch(50.0, 30.0, fs=RATE))
    sos = np.vstack([notch, signal.butter(4, [1.0, 45.0], btype="bandpass", fs=RATE, output="sos")])
    zi = signal.sosfilt_zi(sos)[:, None, :] * eeg_uv[None, :, :1]
    return signal.sosfilt(sos, eeg_uv, axis=-1, zi=zi)[0]


@pytest.fixture(scope="module")
def real_eeg_uv() -> np.ndarray:
    raw = mne.io.read_raw_fif(FIF, preload=True, verbose="error")
    assert raw.info["sfreq"] == RATE and raw.ch_names == ["F4-A1", "CZ-A2"]
    return raw.get_data() * 1e6  # volts -> µV


@pytest.fixture(scope="module")
def side(tmp_path_factory):
    sidecar = Sidecar(tmp_path_factory.mktemp("eeg-real"))
    yield sidecar
    sidecar.terminate()


@pytest.mark.parametrize("filtered", [False, True], ids=["raw", "filtered"])
def test_live_band_powers_of_real_eeg_equal_offline_welch(side, real_eeg_uv, tmp_path, filtered):
    changes = {"notch_hz": 50, "bandpass_enabled": True} if filtered else {"notch_hz": None, "bandpass_enabled": False}
    assert side.post("/v1/settings/filter-config", json=changes).status_code == 200
    path = write_recording(tmp_path / "resting.csv", GANGLION, real_eeg_uv)
    recorded = np.loadtxt(path, delimiter="\t")[:, 1:3].T  # the values as the file holds them (6 decimals)
    expected_signal = live_filter(recorded) if filtered else recorded

    events = EventsClient(side.port, side.token)
    try:
        body = {"board_id": PLAYBACK, "params": {"file": str(path), "master_board": GANGLION}, "playback_speed": 40}
        started = side.post("/v1/control/start-session", json=body)
        assert started.status_code == 200, started.text
        assert started.json()["device"]["sample_rate_hz"] == RATE
        session_id = started.json()["session"]["id"]
        events.wait_for("DeviceDisconnected", lambda p: p["reason"] == "end_of_file", timeout=60)
    finally:
        events.close()
    frames = full_windows(
        [e["payload"] for e in events.of_type("EegBands") if e["payload"]["session_id"] == session_id]
    )
    n = real_eeg_uv.shape[1]
    assert [f["window_end_sample"] for f in frames] == list(range(WINDOW, n + 1, HOP))  # every window of 6 min

    # The file's last 8 s are zeros (the amplifier's output after the recording stopped).
    last_signal = int(np.nonzero(np.any(recorded != 0, axis=0))[0][-1]) + 1
    live_signal = [f for f in frames if f["window_end_sample"] <= last_signal]
    assert len(live_signal) > 1350
    worst = 0.0
    for frame in live_signal:
        offline = offline_band_powers(expected_signal, frame["window_end_sample"])
        for band, values in offline.items():
            live = np.array(frame["absolute"][band][:2])  # rows 3-4 repeat the two real channels
            np.testing.assert_allclose(live, values, rtol=0.01, err_msg=f"{band} at {frame['window_end_sample']}")
            worst = max(worst, float(np.max(np.abs(live - values) / values)))
    assert worst < 0.01
    # Resting eyes-open EEG: most power in delta/theta/alpha; and the zero tail is seen as flat.
    mean_relative = {b: np.mean([f["mean_relative"][b] for f in live_signal]) for b in BANDS}
    assert mean_relative["delta"] + mean_relative["theta"] + mean_relative["alpha"] > 0.5
    assert all(q["status"] != "flat" for q in live_signal[len(live_signal) // 2]["quality"])
    assert all(q["status"] == "flat" for q in frames[-1]["quality"])
