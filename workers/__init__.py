"""Process entry points and their supervisor (built with the workers issue).

Workers are plain Python processes started with the multiprocessing ``spawn`` context; they
never import gevent. Nothing lives here yet: the runtime's first contract (Miso chat) runs
entirely in the server process because its work is network I/O, which gevent handles.
"""
