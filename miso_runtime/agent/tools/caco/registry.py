"""The tool set of a Caco session's agent.

Caco's agent (the Copilot CLI) brings its own file and shell tools and adds twelve of Caco's;
ours has the runtime's file and shell tools (the ones Maria tasks have, locked to the session's
cwd) and Caco's display, applet and agent-to-agent tools, plus ``save_applet``, because our file
tools cannot write into the applet store outside the cwd.
"""

from __future__ import annotations

from ..base import Tool
from ..commands import ExecuteCommand
from ..files import ListFiles, ReadFile, WriteToFile
from ..search import SearchFiles
from .agents import caco_agent_tools
from .applets import caco_applet_tools
from .display import caco_display_tools
from .env import CacoToolEnv


def caco_tools(env: CacoToolEnv) -> list[Tool]:
    """Every tool of the session ``env`` names, the general ones first."""
    tools: list[Tool] = [ExecuteCommand(), ListFiles(), ReadFile(), WriteToFile(), SearchFiles()]
    tools += caco_display_tools(env)
    tools += caco_applet_tools(env)
    tools += caco_agent_tools(env)
    return tools
