"""The workbench of Caco's face, one object per runtime: where each of its stores lives.

Applets and outputs are files under ``<data dir>/caco`` (applets in a git repository of their
own); the applet state is in the shared SQLite store, because the agents' tools (in task
processes) read and change it too; the file browser is locked to the workspace root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .. import constants
from .applet_state import AppletState
from .applets import AppletStore
from .files import WorkspaceFiles
from .outputs import OutputStore
from .preferences import Preferences


class Workbench:
    def __init__(
        self, *, data_dir: Path, workspace_root: Path, database_path: Path, default_model: Callable[[], str]
    ) -> None:
        root = data_dir / constants.CACO_DIR_NAME
        self.workspace_root = workspace_root
        self.root = root
        self.database_path = database_path
        self.applets = AppletStore(root / constants.CACO_APPLETS_DIR_NAME)
        self.state = AppletState(database_path)
        self.outputs = OutputStore(root / constants.CACO_OUTPUTS_DIR_NAME)
        self.files = WorkspaceFiles(workspace_root)
        self.preferences = Preferences(
            root / constants.CACO_PREFERENCES_FILE_NAME, default_cwd=str(workspace_root), default_model=default_model
        )
