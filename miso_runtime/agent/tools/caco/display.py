"""Caco's display tools: show the person a file, a command's output, an image or a media player.

Each stores a display output (:class:`~miso_runtime.workbench.outputs.OutputStore`) and tells the
model only ``[output:<id>] Displayed ...``: the content reaches the person's screen, not the
model's context, which is the point of these tools. The result carries the id under
``RESULT_OUTPUT_ID``, from which the face sends the page its ``output`` frame.

Unlike Caco's, these tools reach only files inside the session's cwd (symlinks followed), as
every other tool of the agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...messages import ToolSpec
from ..base import ToolContext, ToolError, ToolOutcome, failure, success
from ..commands import run_agent_command
from ..paths import resolve_inside
from .embeds import PROVIDERS, embed_for
from .env import RESULT_OUTPUT_ID, CacoToolEnv

#: Largest file ``render_file_contents`` or ``display_image`` shows, bytes (the page's limit
#: for ``/api/file`` is the same).
DISPLAY_MAX_BYTES = 10 * 1024 * 1024
#: ``run_and_display``: Caco's ``exec`` timeout (60 s) and buffer (10 MB).
RUN_TIMEOUT_S = 60.0
RUN_MAX_OUTPUT_BYTES = 10 * 1024 * 1024
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}
#: ``highlight`` when the model gives none, by the text after the name's last dot (Caco's table,
#: so ``Dockerfile`` and ``Makefile`` count only as ``x.dockerfile``); anything else is ``plaintext``.
LANGUAGES = {
    "js": "javascript", "mjs": "javascript", "cjs": "javascript", "jsx": "javascript",
    "ts": "typescript", "tsx": "typescript", "py": "python", "rb": "ruby", "go": "go", "rs": "rust",
    "java": "java", "c": "c", "h": "c", "cpp": "cpp", "hpp": "cpp", "cc": "cpp", "cs": "csharp", "php": "php",
    "swift": "swift", "kt": "kotlin", "scala": "scala", "sh": "bash", "bash": "bash", "zsh": "bash",
    "lua": "lua", "sql": "sql", "json": "json", "yaml": "yaml", "yml": "yaml", "xml": "xml", "html": "html",
    "htm": "html", "css": "css", "scss": "scss", "sass": "scss", "md": "markdown", "dockerfile": "dockerfile",
    "makefile": "makefile", "toml": "toml", "ini": "ini", "conf": "ini", "env": "shell",
}  # fmt: skip


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def language_of(path: Path) -> str:
    return LANGUAGES.get(path.name.rsplit(".", 1)[-1].lower(), "plaintext")


def _regular_file(ctx: ToolContext, raw: Any) -> Path:
    """The file ``raw`` names, inside the cwd (symlinks followed), no larger than ``DISPLAY_MAX_BYTES``."""
    path = resolve_inside(ctx.cwd, raw if isinstance(raw, str) else "")
    if not path.exists():
        raise ToolError(f"Error: file not found: {raw}")
    if not path.is_file():
        raise ToolError(f"Error: {raw} is not a file")
    size = path.stat().st_size
    if size > DISPLAY_MAX_BYTES:
        raise ToolError(f"Error: {raw} has {size} bytes; at most {DISPLAY_MAX_BYTES} can be displayed")
    return path


def _line(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise ToolError(f"Error: '{name}' must be a line number from 1")
    return int(value)


class RenderFileContents:
    spec = ToolSpec(
        "render_file_contents",
        'Display a file to the person without loading it into your context; use it for "show me" requests. '
        "You receive a confirmation only, not the contents.",
        _object(
            {
                "path": {"type": "string", "description": "The file (inside the working directory)."},
                "startLine": {"type": "number", "description": "First line to show (1-indexed)."},
                "endLine": {"type": "number", "description": "Last line to show (inclusive)."},
                "highlight": {
                    "type": "string",
                    "description": "Language to highlight (from the extension if omitted).",
                },
            },
            ["path"],
        ),
    )

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        path = _regular_file(ctx, args.get("path"))
        start, end = _line(args, "startLine"), _line(args, "endLine")
        content = path.read_bytes()
        lines = content.decode("utf-8", errors="replace").split("\n")
        first = (start or 1) - 1
        last = min(end or len(lines), len(lines))
        if first >= len(lines) or last <= first:
            raise ToolError(f"Error: lines {start}-{end} are outside {args['path']} ({len(lines)} lines)")
        shown = "\n".join(lines[first:last])
        highlight = args.get("highlight") if isinstance(args.get("highlight"), str) else None
        metadata = {
            "type": "file",
            "path": str(path),
            "highlight": highlight or language_of(path),
            "startLine": first + 1,
            "endLine": last,
            "totalLines": len(lines),
            "sessionCwd": str(ctx.cwd),
        }
        output_id = self._env.outputs.store(shown, metadata)
        span = f" (lines {first + 1}-{last} of {len(lines)})" if start or end else ""
        text_for_model = (
            f"[output:{output_id}] Displayed {args['path']} to user{span} - {len(lines)} lines, {len(content)} bytes"
        )
        return success(text_for_model, {RESULT_OUTPUT_ID: output_id, "path": str(path), "lines": last - first})


class RunAndDisplay:
    spec = ToolSpec(
        "run_and_display",
        "Run a shell command and display its output to the person. You receive the exit code only, not the "
        "output; use it when the person wants to see results without your analysis.",
        _object(
            {
                "command": {"type": "string", "description": "The shell command."},
                "cwd": {"type": "string", "description": "Where to run it (inside the working directory)."},
            },
            ["command"],
        ),
    )

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("Error: 'command' must be a non-empty string")
        workdir = ctx.cwd if args.get("cwd") is None else resolve_inside(ctx.cwd, args["cwd"], what="cwd")
        if not workdir.is_dir():
            raise ToolError(f"Error: working directory not found: {args.get('cwd')}")
        try:
            run = run_agent_command(
                command, workdir, ctx, timeout_s=RUN_TIMEOUT_S, max_output_bytes=RUN_MAX_OUTPUT_BYTES
            )
        except OSError as exc:
            return failure(f"Failed to run '{command}': {exc}")
        stdout = run.stdout.decode("utf-8", errors="replace")
        stderr = run.stderr.decode("utf-8", errors="replace")
        shown = stdout + (f"\n--- stderr ---\n{stderr}" if stderr else "")
        if run.ended == "timed_out":
            shown += f"\n--- stopped after {RUN_TIMEOUT_S:.0f} s ---"
        elif run.output_cut:
            shown += f"\n--- output cut at {RUN_MAX_OUTPUT_BYTES} bytes ---"
        exit_code = run.status if run.status is not None else 1
        metadata = {"type": "terminal", "command": command, "cwd": str(workdir), "exitCode": exit_code}
        output_id = self._env.outputs.store(shown, {**metadata, "sessionCwd": str(ctx.cwd)})
        lines = shown.count("\n") + (1 if shown and not shown.endswith("\n") else 0)
        if exit_code == 0 and run.ended == "exited":
            text = (
                f"[output:{output_id}] Command succeeded. Output displayed to user ({lines} lines, {len(shown)} chars)"
            )
        else:
            text = f"[output:{output_id}] Command failed (exit {exit_code}). Output displayed to user ({lines} lines)"
        return success(text, {RESULT_OUTPUT_ID: output_id, "exitCode": exit_code})


class DisplayImage:
    spec = ToolSpec(
        "display_image",
        "Display an image file to the person. Supports PNG, JPEG, GIF, WebP and SVG.",
        _object({"path": {"type": "string", "description": "The image (inside the working directory)."}}, ["path"]),
    )

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        path = _regular_file(ctx, args.get("path"))
        mime_type = IMAGE_TYPES.get(path.suffix.lower())
        if mime_type is None:
            raise ToolError(f"Error: {args['path']} is not an image of a supported type (PNG, JPEG, GIF, WebP, SVG)")
        data = path.read_bytes()
        metadata = {"type": "image", "path": str(path), "mimeType": mime_type, "sessionCwd": str(ctx.cwd)}
        output_id = self._env.outputs.store(data, metadata)
        text = f"[output:{output_id}] Displayed image {args['path']} to user ({len(data)} bytes)"
        return success(text, {RESULT_OUTPUT_ID: output_id, "mimeType": mime_type, "size": len(data)})


class EmbedMedia:
    spec = ToolSpec(
        "embed_media",
        "Embed media inline in the chat: a YouTube, Vimeo, SoundCloud, Spotify or Twitter/X link.",
        _object({"url": {"type": "string", "description": "The media's link."}}, ["url"]),
    )

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        embed = embed_for(args.get("url") if isinstance(args.get("url"), str) else "")
        if embed is None:
            return failure(f"Unsupported media URL. Supported: {', '.join(PROVIDERS)}")
        metadata = {
            "type": "embed",
            "provider": embed.provider,
            "providerKey": embed.key,
            "title": embed.title,
            "author": embed.author,
            "url": embed.url,
            "thumbnailUrl": embed.thumbnail_url,
            "sessionCwd": str(ctx.cwd),
        }
        output_id = self._env.outputs.store(embed.html, metadata)
        about = f'"{embed.title}"' + (f" by {embed.author}" if embed.author else "") if embed.title else embed.url
        text = f"[output:{output_id}] Embedded {embed.provider} content: {about}"
        return success(text, {RESULT_OUTPUT_ID: output_id, "provider": embed.provider})


def caco_display_tools(env: CacoToolEnv) -> list:
    return [RenderFileContents(env), RunAndDisplay(env), DisplayImage(env), EmbedMedia(env)]
