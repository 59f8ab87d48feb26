"""A paired LSL stream as a capture source: an inlet read in chunks by the capture worker.

What is assumed of the stream, since LSL itself says little:

* **Units**: samples are EEG in **µV**, as they are recorded and filtered without scaling.
  (LSL streams may declare ``unit`` per channel in their description; most EEG publishers send
  µV, and a stream in volts would show band powers 10^12 too small.)
* **Channels and rate** come from the stream's own info when it is opened, not from the pairing:
  ``channel_count`` channels at ``nominal_srate`` Hz. An irregular stream (rate 0: markers) or a
  string stream cannot be recorded and is refused.
* **Channel names** are the ``desc/channels/channel/label`` entries where the publisher wrote
  them, else ``ch1..chN``.
* **Timestamps**: liblsl's clock of the publisher, synchronised to ours and de-jittered by the
  inlet (``proc_clocksync | proc_dejitter | proc_monotonize``), then moved to UNIX seconds by
  the offset between ``time.time()`` and ``pylsl.local_clock()`` taken at open.

A stream that goes away (its outlet destroyed, its computer gone) raises :class:`SourceLost` on
the next read, since the inlet is made with ``recover=False``: the capture session then
reconnects by ``source_id`` like a lost board, and liblsl's own silent recovery never hides it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from .. import constants
from ..errors import MisoError
from ..neuro.layout import BoardLayout, lsl_layout
from ..neuro.sources import SourceLost, SourceUnavailable
from .discovery import load_pylsl

logger = logging.getLogger(__name__)


def source_predicate(source_id: str) -> str:
    """The XPath predicate that finds streams by ``source_id`` (XPath 1.0 has no escapes)."""
    if "'" not in source_id:
        return f"source_id='{source_id}'"
    if '"' not in source_id:
        return f'source_id="{source_id}"'
    raise SourceUnavailable(f"source_id {source_id!r} holds both quote characters; LSL cannot look it up")


def channel_labels(info: Any, n_channels: int) -> tuple[str, ...]:
    """``desc/channels/channel/label`` of a full stream info, or ``ch1..chN`` when incomplete."""
    labels: list[str] = []
    channel = info.desc().child("channels").child("channel")
    while not channel.empty() and len(labels) < n_channels:
        labels.append(channel.child_value("label").strip())
        channel = channel.next_sibling("channel")
    if len(labels) != n_channels or not all(labels) or len(set(labels)) != n_channels:
        return tuple(f"ch{i + 1}" for i in range(n_channels))
    return tuple(labels)


class LslSource:
    """One open inlet on the stream with ``source_id``.

    Parameters
    ----------
    source_id : str
        The paired stream's ``source_id``.
    expect_channels : int, optional
        Channels the session's recording has; a reopened stream with another count is refused.
    wait_s : float
        Seconds to look for the stream and to open its inlet.

    Raises
    ------
    SourceUnavailable
        No such stream is announced, it cannot be opened, or it is not a numeric regular stream.
    """

    def __init__(
        self,
        source_id: str,
        *,
        expect_channels: int | None = None,
        wait_s: float = constants.LSL_OPEN_WAIT_S,
    ) -> None:
        try:
            pylsl = load_pylsl()
        except MisoError as exc:
            raise SourceUnavailable(exc.message) from None
        self._pylsl = pylsl
        from pylsl.util import LostError  # noqa: PLC0415 - pylsl is imported on first use

        self._lost_error = LostError
        self.source_id = source_id
        found = pylsl.resolve_bypred(source_predicate(source_id), 1, wait_s)
        if not found:
            raise SourceUnavailable(f"no LSL stream with source_id {source_id!r} is announced")
        info = found[0]
        n_channels = int(info.channel_count())
        rate_hz = float(info.nominal_srate())
        if rate_hz <= 0:
            raise SourceUnavailable(f"LSL stream {info.name()!r} has an irregular rate; only regular EEG records")
        if info.channel_format() == pylsl.cf_string:
            raise SourceUnavailable(f"LSL stream {info.name()!r} carries strings, not samples")
        if expect_channels is not None and n_channels != expect_channels:
            raise SourceUnavailable(
                f"LSL stream {source_id!r} now has {n_channels} channels, the session records {expect_channels}"
            )
        flags = pylsl.proc_clocksync | pylsl.proc_dejitter | pylsl.proc_monotonize
        self._inlet = pylsl.StreamInlet(
            info, max_buflen=constants.LSL_INLET_BUFFER_S, recover=False, processing_flags=flags
        )
        try:
            self._inlet.open_stream(timeout=wait_s)
            full = self._inlet.info(timeout=wait_s)
        except Exception as exc:  # noqa: BLE001 - pylsl raises TimeoutError or LostError here
            self.close()
            raise SourceUnavailable(f"cannot open LSL stream {source_id!r}: {exc}") from None
        self._n = n_channels
        self._max_samples = max(1024, int(rate_hz))
        self._unix_offset_s = time.time() - pylsl.local_clock()
        self.layout: BoardLayout = lsl_layout(n_channels, rate_hz, channel_labels(full, n_channels), info.name())
        logger.info(
            "LSL stream %r (%s) open: %d channels at %g Hz from %s",
            info.name(),
            source_id,
            n_channels,
            rate_hz,
            info.hostname(),
        )

    def read(self) -> np.ndarray:
        """What arrived since the last read, in the LSL layout (µV rows, then UNIX seconds)."""
        if self._inlet is None:
            raise SourceLost("the LSL inlet is closed")
        chunks: list[np.ndarray] = []
        stamps: list[np.ndarray] = []
        while True:
            try:
                samples, timestamps = self._inlet.pull_chunk(timeout=0.0, max_samples=self._max_samples)
            except self._lost_error as exc:
                raise SourceLost(f"LSL stream {self.source_id!r} was lost: {exc}") from None
            if not timestamps:
                break
            chunks.append(np.asarray(samples, dtype=np.float64).reshape(len(timestamps), self._n))
            stamps.append(np.asarray(timestamps, dtype=np.float64))
            if len(timestamps) < self._max_samples:
                break
        if not chunks:
            return np.zeros((self._n + 1, 0))
        values = np.concatenate(chunks)
        data = np.empty((self._n + 1, values.shape[0]))
        data[: self._n] = values.T
        data[self._n] = np.concatenate(stamps) + self._unix_offset_s
        return data

    def close(self) -> None:
        inlet, self._inlet = getattr(self, "_inlet", None), None
        if inlet is None:
            return
        try:
            inlet.close_stream()
        except Exception as exc:  # noqa: BLE001 - closing a lost inlet may raise; nothing to keep
            logger.debug("closing the LSL inlet failed: %s", exc)
        del inlet
