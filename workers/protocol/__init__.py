"""The messages that cross the process boundary: one module per worker, plus what all share.

Commands go from the server to a worker and subclass :class:`~workers.protocol.base.Command`;
events come back and subclass :class:`~workers.protocol.base.Event`. They are frozen dataclasses,
pickled over the worker's pipes. A new worker adds its own module here (``llm``, ``capture``,
``agents``, ``embed``, ``analysis``...); nothing lists every message in one place, and this
package imports nothing from ``miso_runtime``, so services and worker entry points can both
import it without a cycle. Messages of one request carry its id, so the server routes each
answer to the request waiting for it.
"""
