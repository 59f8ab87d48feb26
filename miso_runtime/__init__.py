"""Miso runtime: the local sidecar of the Miso desktop app.

Importing this package starts nothing; ``python -m miso_runtime`` (or the ``miso-runtime``
console script) runs the command line in :mod:`miso_runtime.cli`.
"""

__version__ = "0.1.0"
