"""Process workers and their supervisor.

Workers are plain Python processes started with the multiprocessing ``spawn`` context; nothing
in this package imports gevent, so a worker never comes up patched. The server process talks
to each worker through two one-way pipes: commands in, events out (``workers.protocol``).
"""
