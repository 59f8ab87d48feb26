"""LSL outlets for the tests, published from the test process.

liblsl reads its configuration once, on first use, from the file ``LSLAPICFG`` names; this
module points it at the machine-only config of :mod:`tests.lsl_config` before pylsl is
imported, and tests hand the same variable to their sidecar, so neither side ever sees (or
answers) a stream of another computer.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from tests.lsl_config import write_lsl_config


def machine_only_config() -> Path:
    """The liblsl config file of this test process (written once, in a folder of its own)."""
    existing = os.environ.get("LSLAPICFG")
    if existing and Path(existing).is_file():
        return Path(existing)
    path = write_lsl_config(Path(tempfile.mkdtemp(prefix="miso-lsl-")))
    os.environ["LSLAPICFG"] = str(path)
    return path


LSL_CONFIG = machine_only_config()

import pylsl  # noqa: E402 - liblsl must see LSLAPICFG before it loads


def lsl_env() -> dict[str, str]:
    """Environment for a sidecar that scans this machine only."""
    return {"LSLAPICFG": str(LSL_CONFIG)}


def unique_source_id(prefix: str = "miso-test") -> str:
    """A source id no other test (or test process) publishes."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class SineOutlet:
    """An EEG outlet pushing a sine (µV) on every channel in real time from a thread.

    Parameters
    ----------
    source_id : str
        The outlet's stable identity.
    n_channels : int
    rate_hz : float
        Nominal rate, Hz; samples are pushed in chunks of 20 ms at that rate.
    freq_hz, amplitude_uv : float
        The sine, Hz and µV.
    """

    def __init__(
        self,
        source_id: str,
        *,
        name: str = "MisoTestEEG",
        n_channels: int = 4,
        rate_hz: float = 250.0,
        freq_hz: float = 10.0,
        amplitude_uv: float = 20.0,
    ) -> None:
        self.source_id = source_id
        self.name = name
        self.n_channels = n_channels
        self.rate_hz = rate_hz
        self.freq_hz = freq_hz
        self.amplitude_uv = amplitude_uv
        info = pylsl.StreamInfo(name, "EEG", n_channels, rate_hz, pylsl.cf_float32, source_id)
        channels = info.desc().append_child("channels")
        for i in range(n_channels):
            channel = channels.append_child("channel")
            channel.append_child_value("label", f"E{i + 1}")
            channel.append_child_value("unit", "microvolts")
            channel.append_child_value("type", "EEG")
        self._outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=30)
        self._stop = threading.Event()
        self._paused = threading.Event()
        self.pushed = 0
        self._thread = threading.Thread(target=self._push, name=f"outlet-{source_id}", daemon=True)
        self._thread.start()

    def _push(self) -> None:
        chunk_s = 0.02
        started = time.monotonic()
        phases = np.linspace(0.0, np.pi, self.n_channels)
        noise = np.random.default_rng(3)
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate_hz)
            if due > self.pushed:
                if self._paused.is_set():
                    self.pushed = due  # silence: time goes on, nothing is sent
                else:
                    t = (self.pushed + np.arange(due - self.pushed)) / self.rate_hz
                    values = self.amplitude_uv * np.sin(2 * np.pi * self.freq_hz * t[:, None] + phases[None, :])
                    values += noise.normal(0.0, 0.5, size=values.shape)
                    self._outlet.push_chunk(values.astype(np.float32))
                    self.pushed = due
            self._stop.wait(chunk_s)

    def pause(self) -> None:
        """Keep the outlet announced but send nothing (a silent device)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def close(self) -> None:
        """Stop pushing and destroy the outlet: it is no longer announced, and inlets lose it."""
        self._stop.set()
        self._thread.join(timeout=5)
        outlet, self._outlet = self._outlet, None
        del outlet

    def __enter__(self) -> "SineOutlet":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._outlet is not None:
            self.close()
