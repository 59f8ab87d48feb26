"""Which LSL streams are announced now: a blocking scan of a few seconds.

liblsl answers a resolve by listening for the outlets' replies to its multicast (and
``KnownPeers`` unicast) queries for the whole wait, so a scan always takes ``wait_s``. Callers
run it off the gevent hub (the server) or between reads (the capture worker).

How far a scan reaches is liblsl's configuration, not ours: the file named by the ``LSLAPICFG``
environment variable (or ``lsl_api.cfg`` in the working directory, then ``~/lsl_api/``), e.g.
``[multicast] ResolveScope = machine`` to see only this computer's streams, or ``[lab]
KnownPeers = {10.0.0.12}`` to reach a host that multicast does not.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import MisoError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscoveredStream:
    """One announced outlet, in the daemon's field names.

    Attributes
    ----------
    name, stream_type : str
        What the outlet calls itself and its content type (``EEG``, ``EXG``, ``Markers``...).
    channels : int
        Channels per sample.
    sample_rate : float
        Nominal rate, Hz; 0 for an irregular stream (markers), which cannot be recorded as EEG.
    source_id : str
        The outlet's stable identity (empty when the publisher set none); pairing keys on it.
    hostname : str
        Computer that publishes it.
    """

    name: str
    stream_type: str
    channels: int
    sample_rate: float
    source_id: str
    hostname: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lsl_unavailable(exc: BaseException) -> MisoError:
    """The error for a machine where pylsl or its liblsl cannot be loaded."""
    return MisoError(503, "lsl_unavailable", f"Lab Streaming Layer is not available here: {exc}")


def load_pylsl() -> Any:
    """pylsl, imported on first use (it loads liblsl, a native library, at import)."""
    try:
        import pylsl  # noqa: PLC0415 - loads a native library; only LSL users pay for it
    except (ImportError, OSError, RuntimeError) as exc:
        raise lsl_unavailable(exc) from None
    return pylsl


def discover_streams(wait_s: float) -> list[DiscoveredStream]:
    """Every stream announced within ``wait_s`` seconds, sorted by name then source id.

    Blocks for ``wait_s`` seconds. Raises a 503 :class:`MisoError` where liblsl cannot load.
    """
    pylsl = load_pylsl()
    infos = pylsl.resolve_streams(wait_time=wait_s)
    found = [
        DiscoveredStream(
            name=info.name(),
            stream_type=info.type(),
            channels=int(info.channel_count()),
            sample_rate=float(info.nominal_srate()),
            source_id=info.source_id(),
            hostname=info.hostname(),
        )
        for info in infos
    ]
    found.sort(key=lambda s: (s.name, s.source_id, s.hostname))
    logger.debug("LSL scan of %.1f s found %d streams", wait_s, len(found))
    return found
