"""Caco's display outputs: the store, the four display tools, and ``GET /caco/api/outputs/<id>``.

The tools run through the registry as the agent loop runs them, on real files and a real
command; the route is read from a real sidecar, into whose data folder the test stores outputs
the way a session's task process does.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from miso_runtime.agent.messages import Cancelled, CancelToken, ToolCall
from miso_runtime.agent.tools.base import ToolContext, ToolOutcome
from miso_runtime.agent.tools.caco.display import (
    DISPLAY_MAX_BYTES,
    DisplayImage,
    EmbedMedia,
    RenderFileContents,
    RunAndDisplay,
    caco_display_tools,
)
from miso_runtime.agent.tools.caco.embeds import embed_for
from miso_runtime.agent.tools.caco.env import RESULT_OUTPUT_ID, CacoToolEnv
from miso_runtime.agent.tools.registry import run_tool_call
from miso_runtime.workbench.applet_state import AppletState
from miso_runtime.workbench.applets import AppletStore
from miso_runtime.workbench.outputs import OutputStore

ID_FORM = re.compile(r"out_[0-9]+_[0-9a-z]{6}")
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _png() -> bytes:
    """A real 1x1 red PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


PNG = _png()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    cwd = tmp_path / "project"
    cwd.mkdir()
    return cwd.resolve()


@pytest.fixture
def store(tmp_path: Path) -> OutputStore:
    return OutputStore(tmp_path / "data" / "caco" / "outputs")


@pytest.fixture
def env(tmp_path: Path, store: OutputStore) -> CacoToolEnv:
    return CacoToolEnv(
        session_id="session-1",
        applets=AppletStore(tmp_path / "data" / "caco" / "applets"),
        state=AppletState(tmp_path / "data" / "miso.sqlite3"),
        outputs=store,
    )


def call(env: CacoToolEnv, cwd: Path, name: str, args: dict[str, Any], **context: Any) -> ToolOutcome:
    outcome = run_tool_call(
        caco_display_tools(env), ToolCall("call-1", name, json.dumps(args)), ToolContext(cwd=cwd, **context)
    )
    assert outcome is not None
    return outcome


def stored_id(outcome: ToolOutcome) -> str:
    """The id the tool reports, checked to be the one its text names."""
    assert outcome.ok, outcome.text
    output_id = outcome.result[RESULT_OUTPUT_ID]
    assert outcome.text.startswith(f"[output:{output_id}] ")
    return output_id


def nothing_stored(store: OutputStore) -> bool:
    return not store.root.exists() or not any(store.root.iterdir())


# --- the store ----------------------------------------------------------------------------------


def test_store_keeps_text_and_bytes_with_caco_ids_and_times(store: OutputStore) -> None:
    text_id = store.store("héllo\nworld", {"type": "terminal", "command": "echo", "exitCode": 0})
    image_id = store.store(PNG, {"type": "image", "mimeType": "image/png"})
    assert ID_FORM.fullmatch(text_id) and ID_FORM.fullmatch(image_id) and text_id != image_id

    text = store.get(text_id)
    assert text is not None and text.id == text_id
    assert text.data == "héllo\nworld".encode()
    assert text.metadata["type"] == "terminal" and text.metadata["command"] == "echo"
    assert ISO_MS.fullmatch(text.metadata["createdAt"])
    image = store.get(image_id)
    assert image is not None and image.data == PNG and image.metadata["mimeType"] == "image/png"
    # a second store object on the same folder (the server's) reads what the first (a task's) wrote
    assert OutputStore(store.root).get(text_id) == text
    # no temporary files are left beside the outputs
    assert sorted(path.name for path in store.root.iterdir()) == sorted(
        [f"{text_id}.data", f"{text_id}.meta.json", f"{image_id}.data", f"{image_id}.meta.json"]
    )


def test_store_sets_created_at_itself_and_needs_a_type(store: OutputStore) -> None:
    output_id = store.store("x", {"type": "file", "createdAt": "yesterday"})
    assert ISO_MS.fullmatch(store.get(output_id).metadata["createdAt"])
    with pytest.raises(ValueError):
        store.store("x", {"path": "/a"})
    assert sorted(path.name for path in store.root.iterdir()) == [f"{output_id}.data", f"{output_id}.meta.json"]


@pytest.mark.parametrize(
    "bad",
    ["out_1_abcde", "out_1_ABCDEF", "out_1_abcdef\n", "out_1_abcdef.meta", "../out_1_abcdef", "sub/out_1_abcdef",
     "out__abcdef", "x_out_1_abcdef"],
)  # fmt: skip
def test_ids_not_of_caco_form_are_not_found_even_when_files_of_that_name_exist(store: OutputStore, bad: str) -> None:
    (store.root / "sub").mkdir(parents=True)
    # the files an unchecked id would reach
    (store.root / f"{bad}.meta.json").write_text('{"type": "file"}')
    (store.root / f"{bad}.data").write_text("secret")
    assert store.get(bad) is None


@pytest.mark.parametrize("bad", ["", "out_1_abc\x00ef", "/etc/passwd", None, 7])
def test_ids_that_name_no_file_are_not_found(store: OutputStore, bad: Any) -> None:
    store.store("x", {"type": "file"})
    assert store.get(bad) is None


def test_metadata_without_its_data_is_not_found(store: OutputStore) -> None:
    output_id = store.store("x", {"type": "file"})
    (store.root / f"{output_id}.data").unlink()
    assert store.get(output_id) is None
    assert store.get("out_1700000000000_abcdef") is None


# --- render_file_contents ------------------------------------------------------------------------


def test_render_file_contents_stores_the_file_and_tells_the_model_only_a_summary(
    env: CacoToolEnv, workdir: Path
) -> None:
    source = workdir / "src" / "app.py"
    source.parent.mkdir()
    source.write_text("import os\n\ndef main():\n    return os.getcwd()\n")
    outcome = call(env, workdir, "render_file_contents", {"path": "src/app.py"})
    output = env.outputs.get(stored_id(outcome))
    assert output.data == source.read_bytes()
    assert "getcwd" not in outcome.text and "Displayed src/app.py to user - 5 lines" in outcome.text
    meta = output.metadata
    assert meta["type"] == "file" and meta["path"] == str(source) and meta["highlight"] == "python"
    assert (meta["startLine"], meta["endLine"], meta["totalLines"]) == (1, 5, 5)
    assert meta["sessionCwd"] == str(workdir)


def test_render_file_contents_slices_lines_and_keeps_the_given_language(env: CacoToolEnv, workdir: Path) -> None:
    (workdir / "notes.txt").write_text("\n".join(f"line {n}" for n in range(1, 11)))
    args = {"path": str(workdir / "notes.txt"), "startLine": 3, "endLine": 5, "highlight": "rust"}
    outcome = call(env, workdir, "render_file_contents", args)
    output = env.outputs.get(stored_id(outcome))
    assert output.data == b"line 3\nline 4\nline 5"
    assert (output.metadata["startLine"], output.metadata["endLine"], output.metadata["totalLines"]) == (3, 5, 10)
    assert output.metadata["highlight"] == "rust"
    assert "(lines 3-5 of 10)" in outcome.text


def test_render_file_contents_refuses_a_missing_or_too_large_file(env: CacoToolEnv, workdir: Path) -> None:
    missing = call(env, workdir, "render_file_contents", {"path": "nope.txt"})
    assert not missing.ok and "not found" in missing.text
    big = workdir / "big.log"
    with big.open("wb") as handle:
        handle.truncate(DISPLAY_MAX_BYTES + 1)
    too_large = call(env, workdir, "render_file_contents", {"path": "big.log"})
    assert not too_large.ok and str(DISPLAY_MAX_BYTES) in too_large.text
    folder = call(env, workdir, "render_file_contents", {"path": "."})
    assert not folder.ok and "not a file" in folder.text
    assert nothing_stored(env.outputs)


def _escapes(tmp_path: Path, workdir: Path) -> list[str]:
    """Paths that name a file outside ``workdir``: by ``..``, absolutely, and through a symlink."""
    outside = tmp_path / "secret.png"
    outside.write_bytes(PNG)
    (workdir / "link.png").symlink_to(outside)
    (workdir / "linked_dir").symlink_to(tmp_path, target_is_directory=True)
    return ["../secret.png", str(outside), "link.png", "linked_dir/secret.png"]


@pytest.mark.parametrize("tool", ["render_file_contents", "display_image"])
def test_file_tools_refuse_paths_outside_the_cwd(env: CacoToolEnv, workdir: Path, tmp_path: Path, tool: str) -> None:
    for path in _escapes(tmp_path, workdir):
        outcome = call(env, workdir, tool, {"path": path})
        assert not outcome.ok, path
        assert "outside the working directory" in outcome.text
    assert nothing_stored(env.outputs)


# --- run_and_display ----------------------------------------------------------------------------


def test_run_and_display_stores_stdout_and_stderr_and_the_exit_code(env: CacoToolEnv, workdir: Path) -> None:
    (workdir / "sub").mkdir()
    command = "pwd; echo out; echo err >&2; exit 3"
    outcome = call(env, workdir, "run_and_display", {"command": command, "cwd": "sub"})
    output = env.outputs.get(stored_id(outcome))
    assert output.data.decode() == f"{workdir / 'sub'}\nout\n\n--- stderr ---\nerr\n"
    assert output.metadata["type"] == "terminal" and output.metadata["command"] == command
    assert output.metadata["cwd"] == str(workdir / "sub") and output.metadata["exitCode"] == 3
    assert "Command failed (exit 3)" in outcome.text and "out" not in outcome.text.split(")")[-1]
    assert outcome.result["exitCode"] == 3


def test_run_and_display_success_has_no_stderr_part_and_runs_in_the_cwd(env: CacoToolEnv, workdir: Path) -> None:
    groups: list[tuple[int, bool]] = []
    outcome = call(
        env, workdir, "run_and_display", {"command": "pwd"}, on_process_group=lambda *group: groups.append(group)
    )
    output = env.outputs.get(stored_id(outcome))
    assert output.data.decode() == f"{workdir}\n" and output.metadata["exitCode"] == 0
    assert output.metadata["cwd"] == str(workdir)
    assert "Command succeeded" in outcome.text
    # the command ran in a process group of its own, announced and then retired
    assert [running for _, running in groups] == [True, False] and groups[0][0] == groups[1][0]


def test_run_and_display_refuses_a_cwd_outside_and_stops_when_cancelled(
    env: CacoToolEnv, workdir: Path, tmp_path: Path
) -> None:
    (workdir / "out").symlink_to(tmp_path, target_is_directory=True)
    for cwd in ["..", str(tmp_path), "out"]:
        outcome = call(env, workdir, "run_and_display", {"command": "touch made-it", "cwd": cwd})
        assert not outcome.ok and "outside the working directory" in outcome.text
    assert not (tmp_path / "made-it").exists()
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        call(env, workdir, "run_and_display", {"command": "sleep 30"}, cancel=cancel)
    assert nothing_stored(env.outputs)


# --- display_image ------------------------------------------------------------------------------


def test_display_image_stores_the_raw_bytes_with_their_type(env: CacoToolEnv, workdir: Path) -> None:
    (workdir / "pic.PNG").write_bytes(PNG)
    (workdir / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    png = env.outputs.get(stored_id(call(env, workdir, "display_image", {"path": "pic.PNG"})))
    assert png.data == PNG and png.metadata["mimeType"] == "image/png" and png.metadata["type"] == "image"
    assert png.metadata["path"] == str(workdir / "pic.PNG")
    svg = env.outputs.get(stored_id(call(env, workdir, "display_image", {"path": "logo.svg"})))
    assert svg.metadata["mimeType"] == "image/svg+xml"


def test_display_image_refuses_other_types(env: CacoToolEnv, workdir: Path) -> None:
    (workdir / "doc.pdf").write_bytes(b"%PDF-1.4")
    outcome = call(env, workdir, "display_image", {"path": "doc.pdf"})
    assert not outcome.ok and "not an image" in outcome.text
    assert nothing_stored(env.outputs)


# --- embed_media --------------------------------------------------------------------------------

EMBEDS = [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=10", "YouTube", "dQw4w9WgXcQ",
     "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
    ("https://youtu.be/dQw4w9WgXcQ", "YouTube", "dQw4w9WgXcQ", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
    ("https://youtube.com/shorts/abcdefghijk", "YouTube", "abcdefghijk",
     "https://www.youtube-nocookie.com/embed/abcdefghijk"),
    ("https://www.youtube.com/embed/abcdefghijk", "YouTube", "abcdefghijk",
     "https://www.youtube-nocookie.com/embed/abcdefghijk"),
    ("https://vimeo.com/76979871", "Vimeo", "76979871", "https://player.vimeo.com/video/76979871"),
    ("https://soundcloud.com/some-artist/a-track", "SoundCloud", "some-artist/a-track",
     "https://w.soundcloud.com/player/?url=https%3A%2F%2Fsoundcloud.com%2Fsome-artist%2Fa-track"),
    ("https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC", "Spotify", "track/4uLU6hMCjMI75M1A2tKUQC",
     "https://open.spotify.com/embed/track/4uLU6hMCjMI75M1A2tKUQC"),
    ("https://open.spotify.com/album/1DFixLWuPkv3KT3TnV35m3", "Spotify", "album/1DFixLWuPkv3KT3TnV35m3",
     "https://open.spotify.com/embed/album/1DFixLWuPkv3KT3TnV35m3"),
    ("https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M", "Spotify", "playlist/37i9dQZF1DXcBWIGoYBM5M",
     "https://open.spotify.com/embed/playlist/37i9dQZF1DXcBWIGoYBM5M"),
    ("https://open.spotify.com/episode/512ojhOuo1ktJprKbVcKyQ", "Spotify", "episode/512ojhOuo1ktJprKbVcKyQ",
     "https://open.spotify.com/embed/episode/512ojhOuo1ktJprKbVcKyQ"),
    ("https://open.spotify.com/show/2MAi0BvDc6GTFvKFPXnkCL", "Spotify", "show/2MAi0BvDc6GTFvKFPXnkCL",
     "https://open.spotify.com/embed/show/2MAi0BvDc6GTFvKFPXnkCL"),
    ("https://twitter.com/jack/status/20", "Twitter/X", "20", "https://twitter.com/jack/status/20"),
    ("https://x.com/jack/status/20", "Twitter/X", "20", "https://twitter.com/jack/status/20"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "provider", "key", "player"), EMBEDS)
def test_embed_media_builds_each_providers_player(
    env: CacoToolEnv, workdir: Path, url: str, provider: str, key: str, player: str
) -> None:
    outcome = call(env, workdir, "embed_media", {"url": url})
    output = env.outputs.get(stored_id(outcome))
    markup = output.data.decode()
    assert f'"{player}' in markup  # the player's address, as the iframe's src or the quote's link
    assert "<script" not in markup
    meta = output.metadata
    assert (meta["type"], meta["provider"], meta["providerKey"], meta["url"]) == ("embed", provider, key, url)
    assert set(meta) >= {"title", "author", "thumbnailUrl"}
    if provider == "YouTube":
        assert meta["thumbnailUrl"] == f"https://img.youtube.com/vi/{key}/hqdefault.jpg"
    else:
        assert meta["thumbnailUrl"] is None
    assert f"Embedded {provider} content" in outcome.text


def test_a_post_on_x_is_named_by_its_handle(env: CacoToolEnv, workdir: Path) -> None:
    outcome = call(env, workdir, "embed_media", {"url": "https://x.com/jack/status/20"})
    meta = env.outputs.get(stored_id(outcome)).metadata
    assert meta["author"] == "@jack" and meta["title"] == "Post by @jack"
    assert outcome.text.endswith('Embedded Twitter/X content: "Post by @jack" by @jack')


@pytest.mark.parametrize(
    "url",
    ["https://example.com/watch?v=dQw4w9WgXcQ", "https://www.youtube.com/watch?v=short", "javascript:alert(1)",
     "https://vimeo.com/about", "https://open.spotify.com/artist/0OdUWJ0sBjDrqHygGUXeCF", "https://x.com/jack",
     "https://evil.example/youtube.com/watch?v=dQw4w9WgXcQ", "not a url"],
)  # fmt: skip
def test_embed_media_refuses_other_links_and_names_the_providers(env: CacoToolEnv, workdir: Path, url: str) -> None:
    outcome = call(env, workdir, "embed_media", {"url": url})
    assert not outcome.ok
    assert outcome.text == "Unsupported media URL. Supported: YouTube, Vimeo, SoundCloud, Spotify, Twitter/X"
    assert nothing_stored(env.outputs)


def test_embed_html_escapes_what_comes_from_the_link() -> None:
    embed = embed_for('https://soundcloud.com/a"b/c<d')
    assert embed is None  # names outside SoundCloud's form are not taken at all
    embed = embed_for('https://soundcloud.com/user/track?x="><script>alert(1)</script>')
    assert embed is not None and "<script" not in embed.html and '"><' not in embed.html


def test_display_tools_have_cacos_names_and_arguments(env: CacoToolEnv) -> None:
    specs = {tool.spec.name: tool.spec.schema for tool in caco_display_tools(env)}
    assert list(specs) == ["render_file_contents", "run_and_display", "display_image", "embed_media"]
    assert set(specs["render_file_contents"]["properties"]) == {"path", "startLine", "endLine", "highlight"}
    assert set(specs["run_and_display"]["properties"]) == {"command", "cwd"}
    assert specs["display_image"]["required"] == ["path"] and specs["embed_media"]["required"] == ["url"]
    assert [type(tool) for tool in caco_display_tools(env)] == [
        RenderFileContents,
        RunAndDisplay,
        DisplayImage,
        EmbedMedia,
    ]


# --- GET /caco/api/outputs/<id> -----------------------------------------------------------------


@pytest.fixture(scope="module")
def served(sidecar) -> OutputStore:
    """The folder the sidecar serves outputs from, written as a session's task writes it."""
    return OutputStore(sidecar.data_dir / "caco" / "outputs")


def test_a_terminal_output_raw_and_as_json(sidecar, served: OutputStore) -> None:
    output_id = served.store("ok\n--- stderr ---\nwarn", {"type": "terminal", "command": "make", "exitCode": 0})
    raw = sidecar.get(f"/caco/api/outputs/{output_id}")
    assert raw.status_code == 200 and raw.text == "ok\n--- stderr ---\nwarn"
    assert raw.headers["content-type"] == "text/plain; charset=utf-8"
    assert raw.headers["content-security-policy"] == "sandbox" and raw.headers["x-content-type-options"] == "nosniff"

    answer = sidecar.get(f"/caco/api/outputs/{output_id}?format=json")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"id", "data", "metadata", "createdAt"}
    assert body["id"] == output_id and body["data"] == "ok\n--- stderr ---\nwarn"
    assert body["metadata"]["command"] == "make" and body["metadata"]["exitCode"] == 0
    assert body["createdAt"] == body["metadata"]["createdAt"] and ISO_MS.fullmatch(body["createdAt"])


def test_an_image_output_raw_and_as_base64(sidecar, served: OutputStore) -> None:
    output_id = served.store(PNG, {"type": "image", "path": "/p/pic.png", "mimeType": "image/png"})
    raw = sidecar.get(f"/caco/api/outputs/{output_id}")
    assert raw.status_code == 200 and raw.content == PNG and raw.headers["content-type"] == "image/png"
    body = sidecar.get(f"/caco/api/outputs/{output_id}?format=json").json()
    assert base64.b64decode(body["data"]) == PNG and body["metadata"]["mimeType"] == "image/png"


def test_an_embed_output_is_html_that_cannot_run_on_our_origin(sidecar, served: OutputStore) -> None:
    embed = embed_for("https://youtu.be/dQw4w9WgXcQ")
    output_id = served.store(embed.html, {"type": "embed", "provider": "YouTube", "url": embed.url})
    raw = sidecar.get(f"/caco/api/outputs/{output_id}")
    assert raw.status_code == 200 and raw.text == embed.html
    assert raw.headers["content-type"] == "text/html; charset=utf-8"
    assert raw.headers["content-security-policy"] == "sandbox"
    body = sidecar.get(f"/caco/api/outputs/{output_id}?format=json").json()
    assert body["data"] == embed.html and body["metadata"]["provider"] == "YouTube"


def test_a_tool_output_is_served(sidecar, served: OutputStore, tmp_path: Path) -> None:
    """What a display tool stores (through the registry) is what the page gets."""
    (tmp_path / "hello.md").write_text("# Hi\n")
    env = CacoToolEnv("s", AppletStore(tmp_path / "a"), AppletState(tmp_path / "db.sqlite3"), served)
    outcome = call(env, tmp_path.resolve(), "render_file_contents", {"path": "hello.md"})
    body = sidecar.get(f"/caco/api/outputs/{stored_id(outcome)}?format=json").json()
    assert body["data"] == "# Hi\n" and body["metadata"]["highlight"] == "markdown"


@pytest.mark.parametrize(
    "output_id", ["out_1700000000000_zzzzzz", "out_1_ABCDEF", "nope", "out_1_abcdef.meta.json", "..", "%2e%2e",
                  "out_1_abc%00ef", "out_1_abcdef%0A"],
)  # fmt: skip
def test_unknown_and_malformed_ids_are_404(sidecar, output_id: str) -> None:
    answer = sidecar.get(f"/caco/api/outputs/{output_id}")
    assert answer.status_code == 404
    assert "error" in answer.json()


def test_unknown_id_has_cacos_message(sidecar) -> None:
    for suffix in ("", "?format=json"):
        answer = sidecar.get(f"/caco/api/outputs/out_1700000000000_abcdef{suffix}")
        assert answer.status_code == 404 and answer.json() == {"error": "Output expired or not found"}


def test_outputs_need_a_token(sidecar, served: OutputStore) -> None:
    output_id = served.store("x", {"type": "file"})
    assert sidecar.get(f"/caco/api/outputs/{output_id}", headers={}).status_code == 401
