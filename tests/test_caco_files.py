"""Caco's file browser and preferences: the workspace store, the preferences file, and their routes.

The store is tested on real directories; the routes against a real sidecar whose workspace
root (``MISO_CACO_ROOT``) is a temporary directory with a secret file next to it. Every way out
of the root is tried on every file route, and after each refusal the whole tree, inside and
outside the root, is compared with what it was.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import httpx
import pytest

from miso_runtime import constants
from miso_runtime.errors import MisoError
from miso_runtime.workbench.files import ACCESS_DENIED, WorkspaceFiles
from miso_runtime.workbench.preferences import Preferences
from tests.sidecar import Sidecar

API = "/caco/api"
SECRET = "outside the workspace"
LONG_NAME = "n" * 300


def build_workspace(base: Path) -> tuple[Path, Path]:
    """``base/ws`` (the root) with files, a hidden one and two links out; ``base/outside`` with a secret."""
    root, outside = base / "ws", base / "outside"
    root.mkdir(exist_ok=True)
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_text(SECRET)
    (root / "a.txt").write_text("alpha")
    (root / "sub").mkdir()
    (root / "sub" / "b.md").write_text("# b")
    (root / ".hidden").write_text("h")
    (root / "out-file").symlink_to(outside / "secret.txt")
    (root / "out-dir").symlink_to(outside, target_is_directory=True)
    return root, outside


def snapshot(*dirs: Path) -> dict[str, Any]:
    """Every path under ``dirs`` with its content (files), target (links) or ``"dir"``."""
    seen: dict[str, Any] = {}
    for top in dirs:
        for path in sorted(top.rglob("*")):
            if path.is_symlink():
                seen[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                seen[str(path)] = "dir"
            else:
                seen[str(path)] = path.read_bytes()
    return seen


def refused(call: Callable[[], Any]) -> MisoError:
    with pytest.raises(MisoError) as caught:
        call()
    return caught.value


# --- the store ------------------------------------------------------------------------------------


@pytest.fixture()
def files(tmp_path: Path) -> WorkspaceFiles:
    root, _ = build_workspace(tmp_path)
    return WorkspaceFiles(root)


def test_a_listing_hides_dot_files_and_puts_directories_first_then_names_without_regard_to_case(files):
    for name in ("b.txt", "A.txt", "a2.txt", "C.txt", "Z"):
        (files.root / name).write_text("x")
    (files.root / "zeta").mkdir()
    (files.root / "Alpha").mkdir()
    listing = files.list("")
    assert listing["path"] == "." and listing["cwd"] == str(files.root)
    names = [item["name"] for item in listing["files"]]
    assert names == ["Alpha", "sub", "zeta", "a.txt", "A.txt", "a2.txt", "b.txt", "C.txt", "out-dir", "out-file", "Z"]
    assert ".hidden" not in names
    assert {"name": "a.txt", "type": "file", "size": 5} in listing["files"]


def test_a_symlink_is_listed_as_what_it_points_to_inside_and_as_an_empty_file_when_it_points_out(files):
    (files.root / "in-dir").symlink_to(files.root / "sub", target_is_directory=True)
    (files.root / "in-file").symlink_to(files.root / "a.txt")
    (files.root / "dangling").symlink_to(files.root / "gone")
    by_name = {item["name"]: item for item in files.list("")["files"]}
    assert by_name["in-dir"] == {"name": "in-dir", "type": "directory", "size": by_name["in-dir"]["size"]}
    assert by_name["in-file"] == {"name": "in-file", "type": "file", "size": 5}
    # The secret's size is not told, and the link out is no directory to open.
    assert by_name["out-file"] == {"name": "out-file", "type": "file", "size": 0}
    assert by_name["out-dir"] == {"name": "out-dir", "type": "file", "size": 0}
    assert by_name["dangling"] == {"name": "dangling", "type": "file", "size": 0}
    # Through a link that stays inside, paths are answered as the client named them.
    assert files.list("in-dir")["path"] == "in-dir"
    assert [item["name"] for item in files.list("in-dir")["files"]] == ["b.md"]


def test_listing_a_missing_directory_is_404_and_listing_a_file_is_400(files):
    missing = refused(lambda: files.list("nope"))
    assert (missing.status, missing.message) == (404, "Failed to list directory: no such directory")
    assert refused(lambda: files.list("a.txt")).status == 400


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("..", 403),
        ("../outside/secret.txt", 403),
        ("sub/../../outside/secret.txt", 403),
        ("OUTSIDE_ABSOLUTE", 403),
        ("out-file", 403),
        ("out-dir", 403),
        ("out-dir/secret.txt", 403),
        ("a\x00b", 400),
        ("a\nb", 400),
        (LONG_NAME, 400),
        ("d/" * 2100 + "x", 400),
    ],
)
def test_every_way_out_is_refused_before_anything_is_touched(files, path, status):
    outside = files.root.parent / "outside"
    path = path.replace("OUTSIDE_ABSOLUTE", str(outside / "secret.txt"))
    before = snapshot(files.root, outside)
    for call in (
        lambda: files.list(path),
        lambda: files.serve(path),
        lambda: files.read(path),
        lambda: files.put(path, "overwritten"),
        lambda: files.write(path, "overwritten"),
    ):
        error = refused(call)
        assert error.status == status
        if status == 403:
            assert error.message == ACCESS_DENIED
    assert snapshot(files.root, outside) == before


def test_an_absolute_path_inside_the_root_is_accepted_and_answered_relative(files):
    assert files.list(str(files.root / "sub"))["path"] == "sub"
    assert files.serve(str(files.root / "a.txt"))[0] == b"alpha"
    assert files.read(str(files.root / "a.txt"))["path"] == "a.txt"
    assert files.put(str(files.root / "sub" / "c.txt"), "c")["path"] == "sub/c.txt"
    assert (files.root / "sub" / "c.txt").read_text() == "c"
    # ".." that stays inside is fine, and so is a name that merely starts with "..".
    assert files.read("sub/../a.txt")["content"] == "alpha"
    assert files.put("..notes", "n")["path"] == "..notes"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("x.png", "image/png"),
        ("x.JPG", "image/jpeg"),
        ("x.svg", "image/svg+xml"),
        ("x.md", "text/markdown; charset=utf-8"),
        ("x.py", "text/x-python; charset=utf-8"),
        ("x.json", "application/json; charset=utf-8"),
        ("x.xml", "application/xml"),
        ("x.pdf", "application/pdf"),
        ("Makefile", "application/octet-stream"),
        ("x.tar.gz", "application/octet-stream"),
    ],
)
def test_a_served_file_is_typed_by_its_extension(files, name, content_type):
    (files.root / name).write_bytes(b"\x00\x01data")
    assert files.serve(name) == (b"\x00\x01data", content_type)


def test_serve_refuses_directories_missing_files_special_files_and_files_over_10_mib(files):
    assert (refused(lambda: files.serve("sub")).status, refused(lambda: files.serve("sub")).message) == (
        400,
        "Cannot serve directory",
    )
    assert refused(lambda: files.serve("")).message == "Cannot serve directory"
    missing = refused(lambda: files.serve("nope.txt"))
    assert (missing.status, missing.message) == (404, "File not found")
    assert refused(lambda: files.serve("a.txt/inner")).status == 404
    os.mkfifo(files.root / "pipe")  # opening it for reading must not wait for a writer
    assert refused(lambda: files.serve("pipe")).status == 400
    with open(files.root / "big.bin", "wb") as handle:
        handle.truncate(constants.CACO_FILE_SERVE_MAX_BYTES + 1)
    big = refused(lambda: files.serve("big.bin"))
    assert (big.status, big.message) == (413, "File too large (max 10MB)")
    os.truncate(files.root / "big.bin", constants.CACO_FILE_SERVE_MAX_BYTES)
    assert len(files.serve("big.bin")[0]) == constants.CACO_FILE_SERVE_MAX_BYTES


def test_the_legacy_read_takes_utf8_text_of_at_most_100_kib(files):
    (files.root / "t.txt").write_text("é" * 10, encoding="utf-8")
    assert files.read("t.txt") == {"path": "t.txt", "content": "é" * 10, "size": 20}
    (files.root / "edge.txt").write_bytes(b"x" * constants.CACO_FILE_READ_MAX_BYTES)
    assert files.read("edge.txt")["size"] == constants.CACO_FILE_READ_MAX_BYTES
    (files.root / "over.txt").write_bytes(b"x" * (constants.CACO_FILE_READ_MAX_BYTES + 1))
    over = refused(lambda: files.read("over.txt"))
    assert (over.status, over.message) == (400, "File too large (max 100KB)")
    (files.root / "bin").write_bytes(b"\xff\xfe\x00")
    binary = refused(lambda: files.read("bin"))
    assert binary.status == 400 and "not UTF-8" in binary.message
    assert (refused(lambda: files.read("sub")).status, refused(lambda: files.read("sub")).message) == (
        400,
        "Cannot read directory",
    )
    assert refused(lambda: files.read("nope")).status == 404


def test_put_creates_parents_replaces_the_file_whole_and_counts_utf16_units(files):
    answer = files.put("new/deeper/n.txt", "é😀")
    assert answer == {"ok": True, "path": "new/deeper/n.txt", "size": 3}  # 1 + a surrogate pair
    assert (files.root / "new" / "deeper" / "n.txt").read_bytes() == "é😀".encode()
    # A reader that opened the old file keeps reading the old file: the new one replaced it.
    with open(files.root / "a.txt", encoding="utf-8") as old:
        files.put("a.txt", "beta")
        assert old.read() == "alpha"
    assert (files.root / "a.txt").read_text() == "beta"
    assert not [p for p in files.root.rglob("*") if p.name.startswith(".miso-write-")]


def test_put_keeps_the_mode_of_the_file_it_replaces(files):
    script = files.root / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    files.put("run.sh", "#!/bin/sh\necho hi\n")
    assert stat.S_IMODE(script.stat().st_mode) == 0o755


def test_put_refuses_a_directory_or_a_path_through_a_file_and_leaves_nothing(files):
    before = snapshot(files.root)
    assert refused(lambda: files.put("sub", "x")).status == 400
    assert refused(lambda: files.put(".", "x")).status == 400
    through = refused(lambda: files.put("a.txt/inner.txt", "x"))
    assert (through.status, through.message) == (400, "Failed to write file: a parent is not a directory")
    assert refused(lambda: files.put(f"made/{LONG_NAME}", "x")).status == 400
    assert snapshot(files.root) == before


def test_the_legacy_write_needs_the_directory_to_exist(files):
    missing = refused(lambda: files.write("nodir/x.txt", "x"))
    assert (missing.status, missing.message) == (404, "Failed to write file: parent directory does not exist")
    assert not (files.root / "nodir").exists()
    assert files.write("sub/x.txt", "xy") == {"ok": True, "path": "sub/x.txt", "size": 2}
    assert (files.root / "sub" / "x.txt").read_text() == "xy"


def test_a_directory_swapped_for_a_link_out_after_the_check_is_not_followed(files, monkeypatch):
    outside = files.root.parent / "outside"
    checked = files.locate("sub/evil.txt")
    (files.root / "sub").rename(files.root / "sub-moved")
    (files.root / "sub").symlink_to(outside, target_is_directory=True)
    monkeypatch.setattr(files, "locate", lambda path: checked)
    before = snapshot(outside)
    # The link is not followed (O_NOFOLLOW): the write and the read fail, whatever the message says.
    assert refused(lambda: files.put("sub/evil.txt", "x")).status in (400, 403)
    assert refused(lambda: files.serve("sub/secret.txt")).status in (400, 403, 404)
    assert snapshot(outside) == before


# --- preferences ----------------------------------------------------------------------------------


@pytest.fixture()
def preferences(tmp_path: Path) -> Preferences:
    return Preferences(tmp_path / "caco" / "preferences.json", default_cwd="/work", default_model=lambda: "model-x")


def test_preferences_start_from_the_defaults(preferences):
    assert preferences.get() == {"lastCwd": "/work", "lastModel": "model-x", "lastSessionId": None}
    assert not preferences.path.exists()


def test_preferences_follow_caco_update_rules_and_survive_a_restart(preferences):
    assert preferences.update({"lastModel": "m1", "lastCwd": "/p", "lastSessionId": "s1", "other": 1}) == {
        "lastCwd": "/p",
        "lastModel": "m1",
        "lastSessionId": "s1",
    }
    # Empty and null model/cwd change nothing; a present lastSessionId always applies.
    after = preferences.update({"lastModel": "", "lastCwd": None})
    assert after == {"lastCwd": "/p", "lastModel": "m1", "lastSessionId": "s1"}
    assert preferences.update({"lastSessionId": None})["lastSessionId"] is None
    assert preferences.update({"lastSessionId": "s2"})["lastSessionId"] == "s2"
    assert preferences.update({"lastSessionId": ""})["lastSessionId"] is None
    stored = json.loads(preferences.path.read_text())
    assert stored == {"lastModel": "m1", "lastCwd": "/p", "lastSessionId": None}
    again = Preferences(preferences.path, default_cwd="/elsewhere", default_model=lambda: "other")
    assert again.get() == {"lastCwd": "/p", "lastModel": "m1", "lastSessionId": None}
    assert [p.name for p in preferences.path.parent.iterdir()] == ["preferences.json"]


@pytest.mark.parametrize(
    "changes", [{"lastModel": 5}, {"lastCwd": ["/p"]}, {"lastSessionId": 7}, {"lastModel": True}, {"lastCwd": "a\x00"}]
)
def test_preferences_refuse_values_of_the_wrong_type_and_store_nothing(preferences, changes):
    assert refused(lambda: preferences.update(changes)).status == 400
    assert not preferences.path.exists()


def test_an_unreadable_preferences_file_reads_as_the_defaults(preferences):
    preferences.path.parent.mkdir(parents=True)
    preferences.path.write_text("{not json")
    assert preferences.get()["lastModel"] == "model-x"
    preferences.path.write_text(json.dumps({"lastModel": 3, "lastCwd": "/kept", "extra": True}))
    assert preferences.get() == {"lastCwd": "/kept", "lastModel": "model-x", "lastSessionId": None}


def test_concurrent_preference_updates_lose_nothing(preferences):
    keys = ("lastModel", "lastCwd", "lastSessionId")

    def bump(key: str) -> None:
        for i in range(40):
            preferences.update({key: f"{key}-{i}"})

    threads = [threading.Thread(target=bump, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert preferences.get() == {key: f"{key}-39" for key in keys}


# --- the routes -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("caco-files")
    (base / "ws").mkdir()
    return base


@pytest.fixture(scope="module")
def caco(workspace_base: Path) -> Iterator[Sidecar]:
    """A sidecar whose Caco workspace root is ``workspace_base/ws``."""
    side = Sidecar(workspace_base / "data", env={"MISO_CACO_ROOT": str(workspace_base / "ws")})
    yield side
    side.terminate()


@pytest.fixture()
def ws(caco: Sidecar, workspace_base: Path) -> tuple[Path, Path]:
    """The standard layout, fresh for each test (the root itself stays: the sidecar holds it)."""
    for top in (workspace_base / "ws", workspace_base / "outside"):
        if top.exists():
            for child in top.iterdir():
                if child.is_dir() and not child.is_symlink():
                    for below in sorted(child.rglob("*"), reverse=True):
                        below.unlink() if below.is_symlink() or not below.is_dir() else below.rmdir()
                    child.rmdir()
                else:
                    child.unlink()
    return build_workspace(workspace_base)


def put_url(path: str) -> str:
    """The PUT URL of ``path``, its dots escaped so that the client does not collapse ``..`` before sending."""
    return f"{API}/files/" + quote(path, safe="/").replace(".", "%2E")


def call(side: Sidecar, route: str, path: str, **kwargs: Any) -> httpx.Response:
    """One file route asked about ``path`` as its clients ask (query, URL or JSON body)."""
    kwargs.setdefault("headers", side.auth)
    if route == "list":
        return side.http.get(f"{API}/files", params={"path": path}, **kwargs)
    if route == "serve":
        return side.http.get(f"{API}/file", params={"path": path}, **kwargs)
    if route == "read":
        return side.http.get(f"{API}/files/read", params={"path": path}, **kwargs)
    if route == "put":
        return side.http.put(put_url(path), content=kwargs.pop("content", b"overwritten"), **kwargs)
    assert route == "write"
    return side.http.post(f"{API}/files/write", json={"path": path, "content": "overwritten"}, **kwargs)


ROUTES = ("list", "serve", "read", "put", "write")


def error_of(route: str, response: httpx.Response) -> str:
    """The message of an error answer: plain text on ``/api/file``, ``{"error"}`` everywhere else."""
    if route == "serve":
        assert response.headers["content-type"].startswith("text/plain")
        return response.text
    return response.json()["error"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("../outside/secret.txt", 403),
        ("sub/../../outside/secret.txt", 403),
        ("OUTSIDE_ABSOLUTE", 403),
        ("out-file", 403),
        ("out-dir/secret.txt", 403),
        ("a\x00b", 400),
        (LONG_NAME, 400),
    ],
)
def test_every_file_route_refuses_every_way_out_and_writes_nothing(caco, ws, route, path, status):
    root, outside = ws
    path = path.replace("OUTSIDE_ABSOLUTE", str(outside / "secret.txt"))
    before = snapshot(root, outside)
    response = call(caco, route, path)
    if route == "put" and ("\x00" in path or path.startswith("/")):
        # A NUL in the URL is refused by the router before the view (no file can be named so), and
        # so is an absolute path: a PUT names its file relative to the root.
        assert response.status_code == 404 and "error" in response.json()
    else:
        assert response.status_code == status, response.text
        message = error_of(route, response)
        assert message == ACCESS_DENIED if status == 403 else message.startswith("Invalid path")
    assert snapshot(root, outside) == before
    assert (outside / "secret.txt").read_text() == SECRET


def test_listing_through_a_link_out_is_refused(caco, ws):
    response = call(caco, "list", "out-dir")
    assert (response.status_code, response.json()) == (403, {"error": ACCESS_DENIED})


@pytest.mark.parametrize("route", [route for route in ROUTES if route != "put"])
def test_an_absolute_path_inside_the_root_is_accepted_by_every_route(caco, ws, route):
    """Every route that takes its path as data (a PUT's is its URL, relative to the root)."""
    root, _ = ws
    target = "sub" if route == "list" else "sub/b.md"
    response = call(caco, route, str(root / target))
    assert response.status_code == 200, response.text
    if route == "serve":
        assert response.content == b"# b"
    else:
        assert response.json()["path"] == target
    if route in ("put", "write"):
        assert (root / "sub" / "b.md").read_text() == "overwritten"


def test_the_listing_route(caco, ws):
    root, _ = ws
    (root / "B.txt").write_text("bb")
    (root / "Adir").mkdir()
    listing = caco.get(f"{API}/files").json()
    assert listing["path"] == "." and listing["cwd"] == str(root)
    assert [item["name"] for item in listing["files"]] == ["Adir", "sub", "a.txt", "B.txt", "out-dir", "out-file"]
    assert listing["files"][2] == {"name": "a.txt", "type": "file", "size": 5}
    assert caco.get(f"{API}/files", params={"path": "sub"}).json()["path"] == "sub"
    missing = caco.get(f"{API}/files", params={"path": "nope"})
    assert (missing.status_code, missing.json()) == (404, {"error": "Failed to list directory: no such directory"})


def test_a_served_file_has_its_type_and_length_and_cannot_run_script_on_our_origin(caco, ws):
    root, _ = ws
    (root / "page.html").write_text("<script>fetch('/caco/api/files')</script>")
    (root / "doc.pdf").write_bytes(b"%PDF-1.4")
    page = caco.get(f"{API}/file", params={"path": "page.html"})
    assert page.status_code == 200 and page.text.startswith("<script>")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-length"] == str(len(page.content))
    assert page.headers["content-security-policy"] == "sandbox"
    assert page.headers["x-content-type-options"] == "nosniff"
    pdf = caco.get(f"{API}/file", params={"path": "doc.pdf"})
    assert pdf.headers["content-type"] == "application/pdf" and "content-security-policy" not in pdf.headers
    assert pdf.headers["x-content-type-options"] == "nosniff"
    assert caco.get(f"{API}/file", params={"path": "sub/b.md"}).headers["content-type"] == (
        "text/markdown; charset=utf-8"
    )


@pytest.mark.parametrize(
    ("params", "status", "text"),
    [
        ({}, 400, "path parameter required"),
        ({"path": ""}, 400, "path parameter required"),
        ({"path": "sub"}, 400, "Cannot serve directory"),
        ({"path": "nope.txt"}, 404, "File not found"),
        ({"path": "big.bin"}, 413, "File too large (max 10MB)"),
    ],
)
def test_serve_answers_its_errors_in_plain_text(caco, ws, params, status, text):
    root, _ = ws
    with open(root / "big.bin", "wb") as handle:
        handle.truncate(constants.CACO_FILE_SERVE_MAX_BYTES + 1)
    response = caco.get(f"{API}/file", params=params)
    assert (response.status_code, response.text) == (status, text)
    assert response.headers["content-type"].startswith("text/plain")


def test_the_legacy_read_route(caco, ws):
    root, _ = ws
    assert caco.get(f"{API}/files/read", params={"path": "a.txt"}).json() == {
        "path": "a.txt",
        "content": "alpha",
        "size": 5,
    }
    (root / "over.txt").write_bytes(b"x" * (constants.CACO_FILE_READ_MAX_BYTES + 1))
    for params, status, message in [
        ({}, 400, "path parameter required"),
        ({"path": "over.txt"}, 400, "File too large (max 100KB)"),
        ({"path": "sub"}, 400, "Cannot read directory"),
        ({"path": "nope"}, 404, "File not found"),
    ]:
        response = caco.get(f"{API}/files/read", params=params)
        assert (response.status_code, response.json()) == (status, {"error": message})


def test_put_writes_any_body_as_text_creating_parents(caco, ws):
    root, _ = ws
    written = caco.put(put_url("made/deep/n.txt"), content="é😀".encode())
    assert written.json() == {"ok": True, "path": "made/deep/n.txt", "size": 3}
    assert (root / "made" / "deep" / "n.txt").read_text(encoding="utf-8") == "é😀"
    # A JSON body is text like any other (Caco's JSON parser would have eaten it).
    as_json = caco.put(put_url("x.json"), json={"a": 1}).json()
    assert as_json["ok"] and json.loads((root / "x.json").read_text()) == {"a": 1}
    form = {**caco.auth, "Content-Type": "application/x-www-form-urlencoded"}
    assert caco.put(put_url("form.txt"), content=b"a=b&c=d", headers=form).status_code == 200
    assert (root / "form.txt").read_text() == "a=b&c=d"
    assert caco.put(put_url("empty.txt"), content=b"").json()["size"] == 0
    assert (root / "empty.txt").read_bytes() == b""
    assert not [p for p in root.rglob("*") if p.name.startswith(".miso-write-")]


def test_put_refuses_bad_bodies_and_bodies_over_10_mib_and_writes_nothing(caco, ws):
    root, outside = ws
    before = snapshot(root, outside)
    bad = caco.put(put_url("bad.txt"), content=b"\xff\xfe")
    assert (bad.status_code, bad.json()) == (400, {"error": "request body must be UTF-8 text"})
    over = b"x" * (constants.CACO_FILE_WRITE_MAX_BYTES + 1)
    declared = caco.put(put_url("big.txt"), content=over)
    assert declared.status_code == 413 and "error" in declared.json()
    chunked = caco.put(put_url("big.txt"), content=iter([over[:4096], over[4096:]]))
    assert (chunked.status_code, chunked.json()) == (413, {"error": "File too large (max 10MB)"})
    nameless = caco.put(f"{API}/files/", content=b"x")
    assert (nameless.status_code, nameless.json()) == (400, {"error": "file path required in URL"})
    assert snapshot(root, outside) == before
    exactly = caco.put(put_url("big.txt"), content=over[:-1])
    assert exactly.json()["size"] == constants.CACO_FILE_WRITE_MAX_BYTES
    assert (root / "big.txt").stat().st_size == constants.CACO_FILE_WRITE_MAX_BYTES


def test_the_legacy_write_route(caco, ws):
    root, _ = ws
    assert caco.post(f"{API}/files/write", json={"path": "sub/w.txt", "content": "w"}).json() == {
        "ok": True,
        "path": "sub/w.txt",
        "size": 1,
    }
    assert (root / "sub" / "w.txt").read_text() == "w"
    for body, status, message in [
        ({"content": "x"}, 400, "path parameter required"),
        ({"path": "", "content": "x"}, 400, "path parameter required"),
        ({"path": "w2.txt"}, 400, "content parameter required"),
        ({"path": "nodir/w.txt", "content": "x"}, 404, "Failed to write file: parent directory does not exist"),
    ]:
        response = caco.post(f"{API}/files/write", json=body)
        assert (response.status_code, response.json()) == (status, {"error": message})
    assert not (root / "w2.txt").exists() and not (root / "nodir").exists()


def test_every_route_needs_a_token_and_writes_need_an_admin_one(caco, ws):
    root, _ = ws
    for route in ROUTES:
        assert call(caco, route, "a.txt", headers={}).status_code == 401
    assert caco.http.get(f"{API}/preferences").status_code == 401
    assert caco.http.post(f"{API}/preferences", json={"lastModel": "m"}).status_code == 401
    created = caco.post("/v1/auth/tokens", json={"name": "reader", "acl": "read_only", "expiry": "hour"})
    reader = {"x-miso-auth": created.json()["token"]}
    for route in ("list", "serve", "read"):
        assert call(caco, route, "." if route == "list" else "a.txt", headers=reader).status_code == 200
    for route in ("put", "write"):
        assert call(caco, route, "a.txt", headers=reader).status_code == 403
    assert caco.http.get(f"{API}/preferences", headers=reader).status_code == 200
    assert caco.http.post(f"{API}/preferences", json={"lastModel": "m"}, headers=reader).status_code == 403
    assert (root / "a.txt").read_text() == "alpha"


def test_a_page_of_another_origin_cannot_write(caco, ws):
    root, outside = ws
    before = snapshot(root, outside)
    foreign = {**caco.auth, "Origin": "http://evil.example"}
    for route in ("put", "write"):
        assert call(caco, route, "a.txt", headers=foreign).status_code == 403
    assert caco.post(f"{API}/preferences", json={"lastModel": "evil"}, headers=foreign).status_code == 403
    assert snapshot(root, outside) == before
    assert caco.get(f"{API}/preferences").json()["lastModel"] != "evil"


def test_the_preferences_routes(caco, ws):
    first = caco.get(f"{API}/preferences").json()
    assert set(first) == {"lastCwd", "lastModel", "lastSessionId"}
    updated = caco.post(f"{API}/preferences", json={"lastModel": "m-1", "lastSessionId": "s-1", "x": 1})
    assert updated.json() == {"lastCwd": first["lastCwd"], "lastModel": "m-1", "lastSessionId": "s-1"}
    cleared = caco.post(f"{API}/preferences", json={"lastSessionId": None, "lastModel": ""}).json()
    assert cleared == {"lastCwd": first["lastCwd"], "lastModel": "m-1", "lastSessionId": None}
    assert caco.get(f"{API}/preferences").json() == cleared
    wrong = caco.post(f"{API}/preferences", json={"lastModel": 5})
    assert wrong.status_code == 400 and "lastModel" in wrong.json()["error"]
    assert caco.post(f"{API}/preferences", json=["lastModel"]).status_code == 400
    assert caco.get(f"{API}/preferences").json() == cleared
