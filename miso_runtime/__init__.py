"""Miso runtime: the local sidecar of the Miso desktop app.

Importing this package starts nothing; ``python -m miso_runtime`` (or the ``miso-runtime``
console script) runs the command line in :mod:`miso_runtime.cli`.

It sets one environment variable, before anything can import onnxruntime (the EEG and text
encoders do): onnxruntime's Linux wheels collect usage telemetry unless
``ORT_DISABLE_TELEMETRY=1`` is set when it is first imported, and a local sidecar sends
nothing anywhere. Worker processes inherit it.
"""

import os as _os

_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
