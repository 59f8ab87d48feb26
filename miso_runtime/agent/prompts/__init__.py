"""The system prompt of a Maria task, kept as Markdown files beside this module.

Like Maria's (``prompt/prelude.md`` followed by the todo and search_files prompts), it is a
general prelude followed by one section per tool that has conventions to learn; the section on
editing files matches the edit tool the model really has (``apply_patch`` or ``write_to_file``).
The files are package data (``setup.cfg`` ``[options.package_data]``), read with
:mod:`importlib.resources` so that they are found in a wheel as in the source tree.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Iterable

#: Tools whose conventions get a section of their own, in the order they appear.
SECTIONS = ("apply_patch", "write_to_file", "todo", "search_files")


@lru_cache(maxsize=None)
def load(name: str) -> str:
    """The text of ``<name>.md`` without its final newline."""
    return resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8").rstrip("\n")


def system_prompt(tool_names: Iterable[str]) -> str:
    """The prelude, then the section of each tool in ``tool_names`` that has one."""
    names = set(tool_names)
    parts = [load("prelude")] + [load(name) for name in SECTIONS if name in names]
    return "\n\n".join(parts) + "\n"


def maria_system_prompt(model_name: str) -> str:
    """The system prompt for a task run by ``model_name``, matching :func:`maria_tools`' choice."""
    from ..tools.registry import maria_tools

    return system_prompt(tool.spec.name for tool in maria_tools(model_name))


def caco_system_prompt(cwd: str) -> str:
    """The system prompt of a Caco session's agent working in ``cwd``."""
    return load("caco").replace("{cwd}", cwd) + "\n"
