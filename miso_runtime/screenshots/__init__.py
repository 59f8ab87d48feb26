"""Screenshots (skill-daemon section 4.10): periodic captures of the screen, their text and its meaning.

``config`` is the settings model; ``capture``, ``window`` and ``ocr`` are the three things asked of
the desktop (the pixels, the active window, the text); ``pipeline`` runs one capture after another
in the ``screenshots`` worker; ``service`` is the server's side (settings, metrics, queries, files).
Nothing here imports Flask or gevent.
"""
