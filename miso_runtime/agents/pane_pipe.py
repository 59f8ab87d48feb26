"""A named pipe that tmux ``pipe-pane`` writes one pane's output into, and the thread reading it.

Why a pipe and not control mode's ``%output``: tmux stops reading a pane while its only
attached clients are control clients with more than a few hundred bytes queued, so output
through control mode crawls at a third of the speed tmux can read a pane. ``pipe-pane`` has
no such brake. tmux starts the pipe's command itself (``sh -c``), so it cannot inherit a file
descriptor of ours: the command copies its standard input into a FIFO we made and read.

Opening a FIFO for reading blocks until a writer opens it; the reader thread does that, so a
pipe that never starts (the pane exited first) is released by :meth:`PanePipe.cancel`.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: Bytes read from the FIFO at a time (the kernel's pipe buffer is 64 KiB).
READ_BYTES = 65536
# tmux reads the pipe command through its own parser (single quotes, ``#{}`` formats) and then
# ``sh -c``: a path of these characters needs no quoting in either.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./-]+")
_numbers = itertools.count(1)
_FOLDER_PREFIX = "miso-terminal-"


class PipeFolder:
    """A private directory for the FIFOs of one stream (mode 0700, removed by :meth:`remove`).

    Its name carries our process id, so folders left behind by a process that was killed are
    recognised and removed when the next one is made.
    """

    def __init__(self) -> None:
        prefix = f"{_FOLDER_PREFIX}{os.getpid()}-"
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        if not _PLAIN_PATH.fullmatch(str(self.path)):
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        _remove_orphans(self.path.parent)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _remove_orphans(parent: Path) -> None:
    """Remove the FIFO folders of processes that no longer exist."""
    for folder in parent.glob(f"{_FOLDER_PREFIX}*-*"):
        pid = folder.name[len(_FOLDER_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        log.info("removing %s, left behind by process %s", folder, pid)
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class PanePipe:
    """One FIFO and its reader: ``on_data(bytes)`` per read, then ``on_end()`` at end of file.

    Both callbacks run on the reader thread, in order; neither runs after :meth:`cancel`.
    """

    def __init__(self, folder: Path, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        self.path = folder / f"pane-{os.getpid()}-{next(_numbers)}.fifo"
        os.mkfifo(self.path, 0o600)
        self._on_data = on_data
        self._on_end = on_end
        self._cancelled = False
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"pane-pipe-{self.path.stem}", daemon=True)
        self._thread.start()

    @property
    def tmux_command(self) -> str:
        """The ``pipe-pane`` shell command, quoted for tmux's command line."""
        return f"'exec cat >{self.path}'"

    def cancel(self) -> None:
        """Stop delivering; unblock a reader still waiting for its writer; remove the FIFO."""
        self._cancelled = True
        if not self._opened.is_set():
            try:  # be the writer it waits for, and leave at once: it reads end of file
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        self._unlink()

    def join(self, timeout_s: float) -> bool:
        """Wait for the reader to finish; True if it has."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _read(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            log.warning("pane pipe %s could not be opened: %s", self.path, exc)
            return
        self._opened.set()
        self._unlink()  # both ends are open: the name is no longer needed
        try:
            while data := os.read(fd, READ_BYTES):
                if not self._cancelled:
                    self._on_data(data)
        except OSError as exc:
            log.debug("pane pipe %s read ended: %s", self.path, exc)
        finally:
            os.close(fd)
        if not self._cancelled:
            self._on_end()

    def _unlink(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
