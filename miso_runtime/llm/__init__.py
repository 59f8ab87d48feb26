"""Local LLM service layer: GGUF model files on disk and what they contain.

Kept free of Flask and gevent so that it can be used (and tested) without a server; the
faces turn what it returns, and the :class:`miso_runtime.errors.MisoError` it raises, into
HTTP answers.
"""
