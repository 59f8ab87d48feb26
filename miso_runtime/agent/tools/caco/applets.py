"""Caco's applet tools: how to write an applet, saving one, and the state the page and agent share.

Caco's agent writes an applet's files with its general file tools; ours are locked to the
session's cwd, so ``save_applet`` writes them into the applet store (and commits them there).
``restart_server`` exists because Caco's model is told about it, but an agent never restarts
this runtime: the tool says so and does nothing.
"""

from __future__ import annotations

import json
from typing import Any

from ....errors import MisoError
from ...messages import ToolSpec
from ..base import ToolContext, ToolError, ToolOutcome, failure, success
from .env import RESULT_RELOAD, RESULT_STATE_SESSION, RESULT_STATE_UPDATE, CacoToolEnv

HOWTO = """\
# Applets

An applet is a small HTML/JavaScript/CSS app that the chat page runs in its applet panel. Save one
with `save_applet`: a slug (lowercase letters, digits and inner hyphens, at most 64 characters,
e.g. `unit-converter`), a name, an optional description, and its code. The store keeps each
applet as a folder of files: `meta.json` (slug, name, description, createdAt, updatedAt; written
for you), `content.html`, and `script.js` and `style.css` when given:

- `html`: an HTML fragment (no `<html>`, `<head>` or `<body>`), placed in the applet's container;
- `js` (optional): plain JavaScript, run once the HTML is in place. The page wraps it in a
  function, so what it declares is local to it: attach handlers from the script
  (`appletContainer.querySelector('#add').addEventListener('click', add)`), or assign a function to
  `window` (`window.add = add`) before naming it in an `onclick="add()"` attribute;
- `css` (optional): styles. They apply to the whole page, so scope the selectors under a class of
  the applet's own.

Each save replaces the whole applet (a file left out is removed) and is kept in the applet's
history, so send every file each time.

## What the applet's JavaScript can use

- `appletContainer`: the applet's element; look elements up in it (`appletContainer.querySelector`).
- `setAppletState(object)`: store values for you to read with `get_applet_state` (passive: you read
  them when you need them).
- `sendAgentMessage(prompt, {imageData})`: send you a message now (a promise; `imageData`, optional,
  is an image data URL such as `canvas.toDataURL()`). It arrives marked `[applet:<slug>]` and you
  answer it in the chat (active: use it when the applet needs you to act).
- `onStateUpdate(callback)`: `callback(data)` runs with what you push with `set_applet_state`.
- `listApplets()`: resolves to the saved applets (`slug`, `name`, `description`, `updatedAt`).
- `getAppletSlug()`, `getAppletUrlParams()`, `updateAppletUrlParam(key, value)`, `getSessionId()`,
  `registerKeyHandler(slug, handler)` (key presses while this applet is shown).
- There is no `loadApplet()` function: open another applet with a link,
  `<a href="?applet=other-slug&key=value">`; the extra parameters reach it through
  `getAppletUrlParams()`.

## After saving

Give the person a link that opens it: `[Unit converter](/?applet=unit-converter)`.
"""


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


class AppletHowto:
    spec = ToolSpec(
        "applet_howto",
        "How to write an applet (an interactive HTML/JS/CSS app the page runs). Call it when the person asks "
        "for an applet, widget, tool or dashboard.",
        _object({}, []),
    )

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        return success(HOWTO, None)


class SaveApplet:
    spec = ToolSpec(
        "save_applet",
        "Save an applet (all of its files): creates it or replaces it, and keeps the earlier version in its "
        "history. Read applet_howto first.",
        _object(
            {
                "slug": {"type": "string", "description": "Lowercase letters, digits and inner hyphens."},
                "name": {"type": "string", "description": "The applet's title."},
                "description": {"type": "string", "description": "One sentence on what it does."},
                "html": {"type": "string", "description": "The HTML fragment (content.html)."},
                "js": {"type": "string", "description": "Its JavaScript (script.js), if any."},
                "css": {"type": "string", "description": "Its styles (style.css), if any."},
            },
            ["slug", "name", "html"],
        ),
    )

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        for key in ("description", "js", "css"):
            if args.get(key) is not None and not isinstance(args[key], str):
                raise ToolError(f"Error: '{key}' must be a string")
        try:
            applet, sha = self._env.applets.save(
                args["slug"],
                name=args["name"],
                html=args["html"],
                description=args.get("description"),
                js=args.get("js"),
                css=args.get("css"),
            )
        except MisoError as exc:
            return failure(f"Error: {exc.message}")
        link = f"/?applet={applet.slug}"
        text = f"Saved applet {applet.slug} ({applet.title}), version {sha[:10]}. Open it: [{applet.title}]({link})"
        return success(text, {"slug": applet.slug, "commit": sha, "link": link})


class GetAppletState:
    spec = ToolSpec(
        "get_applet_state",
        "Read the state the running applet stored with setAppletState(): the person's input, selections or "
        "computed values, and the applet navigation.",
        _object({"key": {"type": "string", "description": "One key of the state instead of all of it."}}, []),
    )

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        state = self._env.state.get()
        navigation = self._env.state.navigation()
        nav = json.dumps({"stack": navigation.get("stack", []), "urlParams": navigation.get("urlParams", {})})
        key = args.get("key")
        if key is not None:
            if not isinstance(key, str):
                raise ToolError("Error: 'key' must be a string")
            if key in state:
                text = f'Applet state["{key}"]: {json.dumps(state[key])}\n\nNavigation: {nav}'
            else:
                keys = ", ".join(state) or "(none)"
                text = f'Key "{key}" not found in applet state. Available keys: {keys}\n\nNavigation: {nav}'
            return success(text, {"state": state, "navigation": navigation})
        if state:
            text = f"Applet state: {json.dumps(state, indent=2)}\n\nNavigation: {nav}"
        else:
            text = f"No applet state has been set.\n\nNavigation: {nav}"
        return success(text, {"state": state, "navigation": navigation})


class SetAppletState:
    spec = ToolSpec(
        "set_applet_state",
        "Push data to the running applet now (its onStateUpdate() callback receives it); the keys are merged "
        "into the applet state. Use it for progress, results, or anything the applet should show.",
        _object(
            {
                "data": {"type": "object", "description": "The keys and values to push."},
                "sessionId": {"type": "string", "description": "Only the page of this session (default: every page)."},
            },
            ["data"],
        ),
    )

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        data = args.get("data")
        if not isinstance(data, dict):
            raise ToolError("Error: 'data' must be an object")
        target = args.get("sessionId")
        if target is not None and not isinstance(target, str):
            raise ToolError("Error: 'sessionId' must be a string")
        self._env.state.merge(data)
        result = {RESULT_STATE_UPDATE: data, RESULT_STATE_SESSION: target or None}
        return success(f"State pushed to applet: {json.dumps(data)}", result)


class ReloadPage:
    spec = ToolSpec("reload_page", "Reload the browser page to apply client-side file changes.", _object({}, []))

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        return success("Page reload signal sent.", {RESULT_RELOAD: True})


class RestartServer:
    spec = ToolSpec(
        "restart_server",
        "Caco's server restart. Here the server is the local runtime, which agents do not restart: the call "
        "does nothing and says so.",
        _object({"delay": {"type": "number", "description": "Seconds to wait (1-30; ignored)."}}, []),
    )

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        return success(
            "Not restarted: this chat runs in the Miso runtime, which an agent cannot restart. Changes to the "
            "runtime take effect when the person restarts the app.",
            {"restarted": False},
        )


def caco_applet_tools(env: CacoToolEnv) -> list:
    return [
        AppletHowto(env),
        SaveApplet(env),
        GetAppletState(env),
        SetAppletState(env),
        ReloadPage(env),
        RestartServer(env),
    ]
