"""The ``iroh`` worker: the remote-access endpoint and its request bridge (``miso_runtime.iroh.tunnel``).

A process of its own because the iroh bindings are asyncio over a native library, which has
no place on the server's gevent hub (the module docstring of ``tunnel`` says more). It waits
for ``ServeApi`` (the server sends it when it is serving, with its port), binds the endpoint and
serves peers until ``Shutdown``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from .runner import Channel

logger = logging.getLogger("miso.iroh_worker")


def run(channel: Channel, options: dict[str, Any]) -> None:
    """Entry point named in the worker spec (``workers.iroh_worker:run``).

    ``options``: the fields of :class:`miso_runtime.iroh.tunnel.TunnelOptions`.
    """
    from miso_runtime.iroh.tunnel import TunnelOptions, run_tunnel

    asyncio.run(run_tunnel(TunnelOptions(**options), channel.receive, channel.send))
    logger.info("iroh worker %d exiting", os.getpid())
