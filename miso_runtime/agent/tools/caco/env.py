"""What Caco's tools reach besides the session's cwd, and the result keys the face reads.

A Caco session's agent runs in a task process; its tools write display outputs and applets to
the workbench's folders and the applet state to the shared SQLite store, so the server serves
what they made without a round trip. What the page must be told at once (a new output, a
state push, a reload) travels in the tool's structured result under the keys below, which the
Caco face turns into WebSocket messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ....workbench.applet_state import AppletState
from ....workbench.applets import AppletStore
from ....workbench.outputs import OutputStore

#: ``PostToolCall.result[RESULT_OUTPUT_ID]``: the id of the display output the tool stored
#: (the face sends ``{type: 'output', sessionId, outputId}``).
RESULT_OUTPUT_ID = "outputId"
#: ``result[RESULT_STATE_UPDATE]``: the state ``set_applet_state`` pushed (the face broadcasts
#: ``stateUpdate``), with ``result[RESULT_STATE_SESSION]`` the session it names, if any.
RESULT_STATE_UPDATE = "stateUpdate"
RESULT_STATE_SESSION = "sessionId"
#: ``result[RESULT_RELOAD] is True``: ``reload_page`` asked for a reload (an ``info`` activity).
RESULT_RELOAD = "reloadTriggered"


@dataclass
class CacoToolEnv:
    """One session's view of the workbench.

    ``server_url`` is this runtime's own base URL (``http://127.0.0.1:<port>``) and ``token`` a
    token for it: the agent-to-agent tools call the Caco routes, as Caco's do.
    """

    session_id: str
    applets: AppletStore
    state: AppletState
    outputs: OutputStore
    server_url: str | None = None
    token: str | None = field(default=None, repr=False)
