"""The active window's application and title, as the X server tells them (python-xlib).

A window manager that follows EWMH names the focused window in the root window's
``_NET_ACTIVE_WINDOW``; without one (a bare X server) the input focus is asked instead. The
application is the class half of ``WM_CLASS`` (``Firefox``, ``XTerm``), the title
``_NET_WM_NAME`` (UTF-8), else ``WM_NAME``. Anything the desktop does not tell (Wayland, no
display, a window gone meanwhile) is an empty string: a capture never fails for want of it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveWindow:
    app_name: str = ""
    window_title: str = ""


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value) if value else ""


class WindowInfo:
    """One connection to the X server, opened on first use and again after it fails."""

    def __init__(self) -> None:
        self._display: Any = None

    def _connect(self) -> Any:
        if self._display is None:
            if not os.environ.get("DISPLAY"):
                return None
            from Xlib import display

            self._display = display.Display()
        return self._display

    def active(self) -> ActiveWindow:
        """The active window now, or empty fields where the desktop does not say."""
        try:
            conn = self._connect()
            if conn is None:
                return ActiveWindow()
            window = self._active_window(conn)
            return self._describe(conn, window) if window is not None else ActiveWindow()
        except Exception as exc:  # noqa: BLE001 - an X error or a closed connection: no window info
            logger.debug("no active window: %s", exc)
            self.close()
            return ActiveWindow()

    def _active_window(self, conn: Any) -> Any:
        from Xlib import X

        root = conn.screen().root
        prop = root.get_full_property(conn.intern_atom("_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
        if prop is not None and len(prop.value) and int(prop.value[0]):
            return conn.create_resource_object("window", int(prop.value[0]))
        focus = conn.get_input_focus().focus
        if isinstance(focus, int) or focus is None or focus.id == root.id:
            return None  # PointerRoot or None: no window has the focus
        return focus

    def _describe(self, conn: Any, window: Any) -> ActiveWindow:
        """Walk up from ``window`` to the first window that names its class (the client's top level)."""
        net_name, utf8 = conn.intern_atom("_NET_WM_NAME"), conn.intern_atom("UTF8_STRING")
        root_id = conn.screen().root.id
        for _ in range(16):
            wm_class = window.get_wm_class()
            if wm_class:
                prop = window.get_full_property(net_name, utf8)
                title = _text(prop.value) if prop is not None else _text(window.get_wm_name())
                return ActiveWindow(_text(wm_class[-1]), title)
            parent = window.query_tree().parent
            if not parent or parent.id in (0, root_id):
                break
            window = parent
        return ActiveWindow()

    def close(self) -> None:
        if self._display is not None:
            try:
                self._display.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._display = None
