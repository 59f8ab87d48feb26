"""Which agent command-line tools this machine has, and the built-in quick-launch presets.

Detection is a PATH look-up per known tool (``shutil.which``): cheap enough to run on every
``GET /api/detect-tools``, and always current after the user installs a tool.
"""

from __future__ import annotations

import shutil
from typing import Any

from .. import constants
from .config import AgentsConfig


def detect_tools(config: AgentsConfig, path: str | None = None) -> list[dict[str, Any]]:
    """Known agent CLIs found on ``path`` (default: this process's PATH), then the configured run targets."""
    tools = [
        {"name": name, "command": command, "source": "detected", "path": found}
        for name, command in constants.AGENT_CLI_TOOLS
        if (found := shutil.which(command, path=path))
    ]
    tools += [
        {"name": target.name, "command": target.command, "source": "config", "type": target.type}
        for target in config.run_targets
    ]
    return tools


def builtin_quick_launch() -> list[dict[str, str]]:
    return [
        {"name": name, "target": target, "prompt": prompt} for name, target, prompt in constants.BUILTIN_QUICK_LAUNCH
    ]
