"""The liblsl configuration that keeps every LSL scan of a test on this machine.

liblsl reads the file named by ``LSLAPICFG`` once, on first use. ``ResolveScope = machine`` keeps
its queries and announcements on this computer; 127.0.0.1 as a known peer makes discovery work
on hosts whose loopback has no multicast route. Nothing here imports pylsl, so a test that only
starts a sidecar (the fuzzer) can use it.
"""

from __future__ import annotations

from pathlib import Path

LSL_CONFIG_TEXT = """\
[multicast]
ResolveScope = machine
[lab]
KnownPeers = {127.0.0.1}
"""


def write_lsl_config(folder: Path) -> Path:
    """Write the machine-only config into ``folder``; its path is what ``LSLAPICFG`` should hold."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lsl_api.cfg"
    path.write_text(LSL_CONFIG_TEXT)
    return path
