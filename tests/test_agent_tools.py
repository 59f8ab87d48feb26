"""Maria's agent tools, run through ``run_tool_call`` in real directories with real commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from miso_runtime.agent.messages import Cancelled, ToolCall
from miso_runtime.agent.prompts import maria_system_prompt, system_prompt
from miso_runtime.agent.tools import TodoList, ToolContext, maria_tools, run_tool_call
from miso_runtime.constants import (
    AGENT_COMMAND_MAX_OUTPUT_BYTES,
    AGENT_READ_FILE_MAX_TOKENS,
    AGENT_RESULT_STREAM_CHARS,
    AGENT_SEARCH_MAX_RESULTS,
)

CLAUDE = "anthropic:claude-sonnet-4-5"
GPT51 = "openai:gpt-5.1"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The task's cwd, with a sibling ``outside`` directory that nothing may touch."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("top secret\n")
    cwd = tmp_path / "work"
    cwd.mkdir()
    return cwd.resolve()


@pytest.fixture
def ctx(work: Path) -> ToolContext:
    return ToolContext(cwd=work)


def call(ctx: ToolContext, name: str, model: str = CLAUDE, raw: str | None = None, **args):
    tools = maria_tools(model)
    return run_tool_call(tools, ToolCall("call_1", name, raw if raw is not None else json.dumps(args)), ctx)


def gone(pid: int, group: bool = False, within_s: float = 10.0) -> bool:
    """Whether the process (or group) no longer exists, polling up to a generous bound."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            (os.killpg if group else os.kill)(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def wait_for_file(path: Path, within_s: float = 10.0) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


# --- tool sets and prompts ----------------------------------------------------------------------


def test_tool_sets_follow_the_model_name():
    assert [t.spec.name for t in maria_tools(CLAUDE)] == [
        "execute_command",
        "list_files",
        "read_file",
        "todo",
        "search_files",
        "write_to_file",
    ]
    for name in (GPT51, "codex/GPT-5.2", "openai/gpt-5.2-codex"):
        assert [t.spec.name for t in maria_tools(name)][-1] == "apply_patch"
    assert maria_tools("openai:gpt-5")[-1].spec.name == "write_to_file"
    for tool in maria_tools(GPT51):
        assert tool.spec.schema["type"] == "object" and tool.spec.description


def test_system_prompt_describes_the_edit_tool_the_model_has():
    claude = maria_system_prompt(CLAUDE)
    gpt = maria_system_prompt(GPT51)
    assert "# The todo tool" in claude and "# The search_files tool" in claude
    assert "write_to_file" in claude and "*** Begin Patch" not in claude
    assert "*** Begin Patch" in gpt and "# Editing files with write_to_file" not in gpt
    assert system_prompt([]).startswith("You are an experienced software engineer")


# --- read_file ----------------------------------------------------------------------------------


def test_read_file_numbers_lines_and_gives_the_ui_its_result(ctx, work):
    (work / "notes.txt").write_text("".join(f"line {n}\n" for n in range(1, 13)))
    outcome = call(ctx, "read_file", path="notes.txt")
    assert outcome.error is None
    assert outcome.text.splitlines()[:3] == [
        "File: notes.txt (lines 1-12 (12 lines))",
        " L01 | line 1",
        " L02 | line 2",
    ]
    assert outcome.text.splitlines()[-1] == " L12 | line 12"
    assert outcome.result == {
        "path": "notes.txt",
        "content": "\n".join(f"line {n}" for n in range(1, 13)),
        "start_line": 1,
        "end_line": 12,
    }
    ranged = call(ctx, "read_file", path="notes.txt", start_line=2, end_line=4)
    assert ranged.text == "File: notes.txt (lines 2-4 (3 lines))\n L2 | line 2\n L3 | line 3\n L4 | line 4"
    assert ranged.result["content"] == "line 2\nline 3\nline 4"
    clamped = call(ctx, "read_file", path="notes.txt", start_line=11, end_line=500)
    assert clamped.result["end_line"] == 12 and "(2 lines)" in clamped.text
    absolute = call(ctx, "read_file", path=str(work / "notes.txt"), start_line=12)
    assert absolute.text.endswith("L12 | line 12")


def test_read_file_errors(ctx, work):
    (work / "three.txt").write_text("a\nb\nc\n")
    (work / "dir").mkdir()
    (work / "blob.bin").write_bytes(b"\x7fELF\x00\x01\x02")
    cases = {
        "missing.txt": "Error reading file: File not found: missing.txt",
        "dir": "Error reading file: Path is a directory: dir",
    }
    for path, text in cases.items():
        outcome = call(ctx, "read_file", path=path)
        assert outcome.text == text and outcome.error and outcome.result is None
    assert "binary" in call(ctx, "read_file", path="blob.bin").text
    assert call(ctx, "read_file", path="three.txt", start_line=0).text == "Error: start_line must be >= 1, got 0"
    assert "past the end" in call(ctx, "read_file", path="three.txt", start_line=4).text
    assert "must not be before" in call(ctx, "read_file", path="three.txt", start_line=3, end_line=2).text


def test_read_file_refuses_more_than_its_token_limit(ctx, work):
    (work / "big.txt").write_text("x " * 50_000)
    outcome = call(ctx, "read_file", path="big.txt")
    assert outcome.error and f"over {AGENT_READ_FILE_MAX_TOKENS} tokens" in outcome.text
    assert "start_line" in outcome.text and "search_files" in outcome.text
    (work / "lines.txt").write_text("".join(f"Line {n}: some content here\n" for n in range(1, 30_001)))
    assert call(ctx, "read_file", path="lines.txt").error
    part = call(ctx, "read_file", path="lines.txt", start_line=100, end_line=110)
    assert part.error is None and part.text.splitlines()[1] == " L100 | Line 100: some content here"


# --- list_files ---------------------------------------------------------------------------------


def test_list_files_entries_counts_and_text(ctx, work):
    (work / "b.txt").write_text("hello")
    (work / ".env").write_text("K=V\n")
    (work / "src").mkdir()
    (work / "link").symlink_to("b.txt")
    outcome = call(ctx, "list_files", path=".")
    assert outcome.result == {
        "path": ".",
        "entries": [
            {"name": ".env", "kind": "file", "size": 4, "is_hidden": True},
            {"name": "b.txt", "kind": "file", "size": 5, "is_hidden": False},
            {"name": "link", "kind": "symlink", "size": None, "is_hidden": False},
            {"name": "src", "kind": "directory", "size": None, "is_hidden": False},
        ],
        "total_count": 4,
        "file_count": 2,
        "directory_count": 1,
    }
    assert outcome.text.splitlines()[:2] == ["Directory: .", "Total: 4 items (2 files, 1 directories, 1 other)"]
    assert "b.txt (5 bytes)" in outcome.text and "src/" in outcome.text and "link -> b.txt (symlink)" in outcome.text
    empty = call(ctx, "list_files", path="src")
    assert empty.text == "Directory: src is empty." and empty.result["total_count"] == 0
    assert call(ctx, "list_files", path="nope").error
    assert "not a directory" in call(ctx, "list_files", path="b.txt").text


# --- paths that leave the cwd -------------------------------------------------------------------


def test_paths_outside_the_cwd_are_refused_and_nothing_is_touched(ctx, work):
    outside = work.parent / "outside"
    (work / "out-file").symlink_to(outside / "secret.txt")
    (work / "out-dir").symlink_to(outside)
    (work / "dangling").symlink_to(outside / "new.txt")
    escapes = ["../outside/secret.txt", "/etc/passwd", str(outside / "secret.txt"), "out-file", "out-dir/secret.txt"]
    for path in escapes:
        for name, args in (
            ("read_file", {"path": path}),
            ("list_files", {"path": path}),
            ("search_files", {"path": path, "regex": "secret", "kind": "regex"}),
        ):
            outcome = call(ctx, name, **args)
            assert outcome.error and "outside the working directory" in outcome.text, (name, path)
            assert "top secret" not in outcome.text
    writes = ["../outside/new.txt", str(outside / "new.txt"), "out-dir/new.txt", "dangling", "out-dir/deep/x.txt"]
    for path in writes:
        outcome = call(ctx, "write_to_file", path=path, content="pwned")
        assert outcome.error and "outside the working directory" in outcome.text, path
        patch = f"*** Begin Patch\n*** Add File: {path}\n+pwned\n*** End Patch"
        assert "outside the working directory" in call(ctx, "apply_patch", model=GPT51, patch=patch).text
    for path in ["out-file", "../outside/secret.txt"]:
        patch = f"*** Begin Patch\n*** Delete File: {path}\n*** End Patch"
        assert call(ctx, "apply_patch", model=GPT51, patch=patch).error
    assert call(ctx, "execute_command", command="pwd", working_directory="..").error
    assert call(ctx, "execute_command", command="pwd", working_directory="out-dir").error
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert not (work / "deep").exists()


def test_symlinks_that_stay_inside_are_fine(ctx, work):
    (work / "real").mkdir()
    (work / "real" / "a.txt").write_text("inside\n")
    (work / "alias").symlink_to("real")
    assert call(ctx, "read_file", path="alias/a.txt").result["content"] == "inside"
    assert call(ctx, "write_to_file", path="alias/b.txt", content="x").error is None
    assert (work / "real" / "b.txt").read_text() == "x"


# --- execute_command ----------------------------------------------------------------------------


def test_execute_command_reports_status_stdout_and_stderr(ctx, work):
    (work / "file.txt").write_text("hello world")
    outcome = call(ctx, "execute_command", command="cat file.txt; echo oops >&2; exit 3")
    assert outcome.result == [
        "Completed",
        {"command": "cat file.txt; echo oops >&2; exit 3", "status": 3, "stdout": "hello world", "stderr": "oops\n",
         "max_output_lines": 100},
    ]  # fmt: skip
    assert outcome.text == (
        "Command cat file.txt; echo oops >&2; exit 3 exited with status 3.\n"
        "=== STDOUT (1 lines) ===\nhello world\n=== STDERR (1 lines) ===\noops"
    )
    quiet = call(ctx, "execute_command", command="true")
    assert quiet.text == "Command true exited with status 0." and quiet.result[1]["stdout"] == ""
    assert call(ctx, "execute_command", command="cat").result[1]["status"] == 0  # stdin is /dev/null
    (work / "sub").mkdir()
    assert call(ctx, "execute_command", command="pwd", working_directory="sub").result[1]["stdout"].strip() == str(
        work / "sub"
    )
    assert call(ctx, "execute_command", command="pwd").result[1]["stdout"].strip() == str(work)


def test_commands_do_not_see_the_runtimes_own_variables(ctx, monkeypatch):
    monkeypatch.setenv("MISO_ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("PROJECT_SETTING", "kept")
    outcome = call(ctx, "execute_command", command='echo "[$MISO_ANTHROPIC_API_KEY] $PROJECT_SETTING $PAGER"')
    assert outcome.result[1]["stdout"] == "[] kept cat\n"


def test_execute_command_shows_the_first_lines(ctx):
    outcome = call(ctx, "execute_command", command="seq 1 100", max_output_lines=5)
    assert outcome.text.splitlines() == [
        "Command seq 1 100 exited with status 0.",
        "=== STDOUT (first 5 of 100 lines) ===",
        "1",
        "2",
        "3",
        "4",
        "5",
        "... (95 more lines cut; redirect the output to a file to see all of it) ...",
    ]
    assert outcome.result[1]["stdout"] == "".join(f"{n}\n" for n in range(1, 101))
    assert outcome.result[1]["max_output_lines"] == 5
    assert "(100 lines)" in call(ctx, "execute_command", command="seq 1 100").text


def test_execute_command_refusals(ctx):
    refused = call(ctx, "execute_command", command="sleep 5", background=True)
    assert refused.error and "background" in refused.text
    assert "must be a positive" in call(ctx, "execute_command", command="true", timeout=0).text
    assert "must be a positive" in call(ctx, "execute_command", command="true", max_output_lines=-1).text


def test_timeout_kills_the_whole_process_group(ctx, work):
    command = "echo $$ > pgid; sleep 30 & echo $! > child; echo started; sleep 30"
    outcome = call(ctx, "execute_command", command=command, timeout=700)
    assert outcome.error is None
    assert outcome.result == [
        "TimedOut",
        {"command": command, "timeout": 700, "stdout": "started\n", "stderr": "", "max_output_lines": 100},
    ]
    assert outcome.text.startswith(f"Command {command} timed out after 700 ms and was stopped.")
    pgid, child = int((work / "pgid").read_text()), int((work / "child").read_text())
    assert gone(pgid, group=True) and gone(child)


def test_cancel_from_another_thread_stops_the_command_and_its_children(ctx, work):
    command = "echo $$ > pgid; sleep 30 & echo $! > child; sleep 30"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call(ctx, "execute_command", command=command)
        except BaseException as exc:  # noqa: B036 - the test wants whatever was raised
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    pgid = int(wait_for_file(work / "pgid"))
    child = int(wait_for_file(work / "child"))
    ctx.cancel.cancel()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)
    assert gone(pgid, group=True) and gone(child)


def test_background_leftovers_are_stopped_when_the_command_exits(ctx, work):
    outcome = call(ctx, "execute_command", command="sleep 30 & echo $! > child; echo done")
    assert outcome.result[1]["status"] == 0 and outcome.result[1]["stdout"] == "done\n"
    assert "1 process(es) it left running in the background were stopped" in outcome.text
    assert gone(int((work / "child").read_text()))


def test_endless_output_is_bounded(ctx):
    outcome = call(ctx, "execute_command", command="yes", max_output_lines=3)
    details = outcome.result[1]
    assert outcome.result[0] == "Completed" and details["status"] == 128 + signal.SIGKILL
    kept = details["stdout"].split("\n... (")
    assert len(kept[0]) == AGENT_RESULT_STREAM_CHARS  # what the UI gets; the worker kept the limit
    assert kept[1] == f"{AGENT_COMMAND_MAX_OUTPUT_BYTES - AGENT_RESULT_STREAM_CHARS} more characters cut) ..."
    assert f"more than {AGENT_COMMAND_MAX_OUTPUT_BYTES} bytes and was stopped" in outcome.text
    assert "=== STDOUT (first 3 of " in outcome.text and outcome.text.count("\ny") == 3


# --- todo ---------------------------------------------------------------------------------------


def test_todo_flow_and_the_ui_result(ctx):
    empty = call(ctx, "todo", action="read")
    assert empty.result == ["Read", {"todos": []}] and empty.text == "The todo list is empty."
    created = call(ctx, "todo", action="create", content="1. Write the parser\n- Test it\n\n* Ship it", priority="high")
    kind, body = created.result
    assert kind == "Write" and body["is_new_creation"] is True and body["message"] == "Created 3 new todo items"
    assert [t["content"] for t in body["todos"]] == ["Write the parser", "Test it", "Ship it"]
    assert body["updated_todos"] == body["todos"]
    first = body["todos"][0]
    assert list(first) == ["content", "created_at", "id", "priority", "status", "updated_at"]
    assert first["priority"] == "High" and first["status"] == "Pending" and len(first["id"]) == 8
    ids = [t["id"] for t in body["todos"]]

    progress = call(ctx, "todo", action="mark_progress", task_id=ids[0])
    assert progress.result[1]["updated_todos"][0]["status"] == "InProgress"
    done = call(ctx, "todo", action="mark_completed", task_id=ids[1])
    assert done.result[1]["message"] == "Marked task as completed: Test it"
    updated = call(ctx, "todo", action="update", task_id=ids[0], notes="use a real grammar", priority="low")
    item = updated.result[1]["updated_todos"][0]
    assert (item["status"], item["priority"], item["notes"]) == ("InProgress", "Low", "use a real grammar")
    added = call(ctx, "todo", action="add_task", content="<task>Write docs</task>", status="in_progress")
    assert added.result[1]["updated_todos"][0]["content"] == "Write docs"
    assert added.result[1]["is_new_creation"] is False

    read = call(ctx, "todo", action="READ")
    assert [t["status"] for t in read.result[1]["todos"]] == ["InProgress", "Completed", "Pending", "InProgress"]
    assert f"[in progress] (low) [{ids[0]}] Write the parser" in read.text
    assert "notes: use a real grammar" in read.text
    assert "Total 4: 1 completed, 2 in progress, 1 pending" in read.text

    restored = ToolContext(cwd=ctx.cwd, todos=TodoList.from_json(json.loads(json.dumps(ctx.todos.to_json()))))
    assert call(restored, "todo", action="read").result == read.result


def test_todo_errors(ctx):
    assert "invalid action" in call(ctx, "todo", action="explode").text
    assert "'content'" in call(ctx, "todo", action="create").text
    assert "'task_id' is required" in call(ctx, "todo", action="mark_completed").text
    assert "no task with id 'abc'" in call(ctx, "todo", action="update", task_id="abc").text
    assert "invalid priority" in call(ctx, "todo", action="add_task", content="x", priority="urgent").text
    with pytest.raises(ValueError):
        TodoList.from_json({"todos": [{"content": "x", "id": "1", "status": "Done"}]})


# --- search_files -------------------------------------------------------------------------------


def test_search_shows_matches_with_context_lines(ctx, work):
    (work / "src").mkdir()
    (work / "src" / "app.py").write_text("import os\n\ndef main():\n    return helper()\n\n\ndef helper():\n    pass\n")
    (work / "src" / "notes.md").write_text("helper docs\n")
    (work / "image.png").write_bytes(b"\x89PNG\x00helper\x00")
    outcome = call(ctx, "search_files", path=".", regex=r"helper\(", kind="regex", context_lines=1)
    assert outcome.error is None
    assert outcome.text.split("\n\n")[1:] == [
        "src/app.py:4\n3: def main():\n4:     return helper()\n5: ",
        "src/app.py:7\n6: \n7: def helper():\n8:     pass",
    ]
    assert outcome.text.startswith("Found 2 matches in 1 files.")
    assert outcome.result["total_matches"] == 2
    assert outcome.result["results"][0] == {
        "path": "src/app.py",
        "line_number": 4,
        "match_line": "    return helper()",
        "context": "3: def main():\n4:     return helper()\n5: ",
    }
    md = call(ctx, "search_files", path="src", regex="helper", kind="regex", file_pattern="*.{md,txt}")
    assert [r["path"] for r in md.result["results"]] == ["src/notes.md"]
    one = call(ctx, "search_files", path="src/app.py", regex="^def", kind="regex", context_lines=0)
    assert [r["line_number"] for r in one.result["results"]] == [3, 7]
    assert call(ctx, "search_files", path=".", regex="nothing-like-this", kind="regex").text.startswith(
        "No matches found"
    )


def test_search_respects_gitignore(ctx, work):
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    (work / ".gitignore").write_text("ignored.txt\nbuild/\n")
    (work / "kept.txt").write_text("needle\n")
    (work / "ignored.txt").write_text("needle\n")
    (work / "build").mkdir()
    (work / "build" / "out.txt").write_text("needle\n")
    respected = call(ctx, "search_files", path=".", regex="needle", kind="regex")
    assert [r["path"] for r in respected.result["results"]] == ["kept.txt"]
    assert "files ignored by git were skipped" in respected.text
    everything = call(ctx, "search_files", path=".", regex="needle", kind="regex", respect_gitignore=False)
    assert sorted(r["path"] for r in everything.result["results"]) == ["build/out.txt", "ignored.txt", "kept.txt"]
    assert not any(r["path"].startswith(".git/") for r in everything.result["results"])


def test_search_outside_git_says_gitignore_was_not_applied(ctx, work):
    (work / "a.txt").write_text("x\n")
    assert "not in a git work tree" in call(ctx, "search_files", path=".", regex="x", kind="regex").text


def test_search_results_are_bounded(ctx, work):
    (work / "many.txt").write_text("hit\n" * (AGENT_SEARCH_MAX_RESULTS + 50))
    outcome = call(ctx, "search_files", path=".", regex="hit", kind="regex", context_lines=0)
    assert len(outcome.result["results"]) == AGENT_SEARCH_MAX_RESULTS and outcome.result["truncated"]
    assert outcome.text.startswith(f"Found {AGENT_SEARCH_MAX_RESULTS + 50} matches; showing the first 200")


def test_search_refusals(ctx, work):
    for kind in ("moonbit_definition", "moonbit_references"):
        outcome = call(ctx, "search_files", path=".", regex="x", kind=kind)
        assert outcome.error and "kind 'regex'" in outcome.text
    assert "must be one of" in call(ctx, "search_files", path=".", regex="x", kind="fuzzy").text
    assert call(ctx, "search_files", path=".", regex="(unclosed", kind="regex").text.startswith("Invalid regex")
    assert "not found" in call(ctx, "search_files", path="nope", regex="x", kind="regex").text


def test_a_pattern_that_backtracks_without_end_is_cut_short(ctx, work):
    (work / "x.txt").write_text("x" * 3000 + "\n")
    outcome = call(ctx, "search_files", path=".", regex="(x+x+)+y", kind="regex")
    assert outcome.error is None and "took too long on x.txt:1" in outcome.text


# --- write_to_file ------------------------------------------------------------------------------


def test_write_to_file_creates_and_appends(ctx, work):
    created = call(ctx, "write_to_file", path="deep/dir/file.txt", content="Line 1\nLine 2")
    target = work / "deep" / "dir" / "file.txt"
    assert created.text == f"Content written to file at path: {target}"
    assert created.result == {"path": str(target)}
    call(ctx, "write_to_file", path="deep/dir/file.txt", content="Line 3")
    call(ctx, "write_to_file", path="deep/dir/file.txt", content="Line 4", separator=" | ")
    assert target.read_text() == "Line 1\nLine 2\nLine 3 | Line 4"
    (work / "empty.txt").write_text("")
    call(ctx, "write_to_file", path="empty.txt", content="first")
    assert (work / "empty.txt").read_text() == "first"
    assert "is a directory" in call(ctx, "write_to_file", path="deep", content="x").text


# --- apply_patch --------------------------------------------------------------------------------


def test_apply_patch_adds_updates_moves_and_deletes(ctx, work):
    (work / "app.py").write_text('def greet():\n    print("Hi")\n\n\ndef main():\n    greet()\n')
    (work / "old.txt").write_text("obsolete\n")
    (work / "move_me.txt").write_text("a\nb\nc\n")
    patch = "\n".join(
        [
            "*** Begin Patch",
            "*** Add File: docs/hello.txt",
            "+Hello",
            "+world",
            "*** Update File: app.py",
            "@@ def greet():",
            " def greet():",
            '-    print("Hi")',
            '+    print("Hello, world!")',
            "@@ def main():",
            " def main():",
            "-    greet()",
            "+    greet()",
            "+    greet()",
            "*** End of File",
            "*** Update File: move_me.txt",
            "*** Move to: moved/now.txt",
            "@@",
            " a",
            "-b",
            "+B",
            "*** Delete File: old.txt",
            "*** End Patch",
        ]
    )
    outcome = call(ctx, "apply_patch", model=GPT51, patch=patch)
    expected = {
        "success": True,
        "message": "Success. Updated the following files:\nA docs/hello.txt\nM app.py\nM moved/now.txt\nD old.txt",
        "added": ["docs/hello.txt"],
        "modified": ["app.py", "moved/now.txt"],
        "deleted": ["old.txt"],
    }
    assert outcome.error is None and outcome.result == expected and json.loads(outcome.text) == expected
    assert (work / "docs" / "hello.txt").read_text() == "Hello\nworld\n"
    assert (work / "app.py").read_text() == (
        'def greet():\n    print("Hello, world!")\n\n\ndef main():\n    greet()\n    greet()\n'
    )
    assert (work / "moved" / "now.txt").read_text() == "a\nB\nc\n"
    assert not (work / "move_me.txt").exists() and not (work / "old.txt").exists()


def test_apply_patch_tolerates_whitespace_and_typographic_dashes(ctx, work):
    (work / "f.txt").write_text("alpha - beta   \n\tgamma\n")
    patch = "*** Begin Patch\n*** Update File: f.txt\n@@\n-alpha \u2013 beta\n+alpha and beta\n  gamma\n*** End Patch"
    assert call(ctx, "apply_patch", model=GPT51, patch=patch).error is None
    assert (work / "f.txt").read_text() == "alpha and beta\n\tgamma\n"


def test_a_bad_patch_changes_nothing(ctx, work):
    (work / "f.txt").write_text("one\ntwo\n")
    bad = [
        ("*** Update File: f.txt\n-one\n+1\n*** End Patch", "Invalid patch: the first line must be"),
        ("*** Begin Patch\n*** Update File: f.txt\n-one\n+1", "Invalid patch: the last line must be"),
        ("*** Begin Patch\n*** Rename File: f.txt\n*** End Patch", "Invalid hunk at line 2"),
        ("*** Begin Patch\n*** End Patch", "changes no file"),
        (
            "*** Begin Patch\n*** Add File: new.txt\n+new\n*** Update File: f.txt\n@@\n-three\n+3\n*** End Patch",
            "these lines are not in f.txt",
        ),
        ("*** Begin Patch\n*** Delete File: missing.txt\n*** End Patch", "file not found: missing.txt"),
        ("*** Begin Patch\n*** Update File: f.txt\n@@ nowhere\n-one\n+1\n*** End Patch", "cannot find the line"),
    ]
    for patch, message in bad:
        outcome = call(ctx, "apply_patch", model=GPT51, patch=patch)
        assert outcome.error and message in outcome.text, (patch, outcome.text)
    assert (work / "f.txt").read_text() == "one\ntwo\n" and not (work / "new.txt").exists()


# --- bad calls ----------------------------------------------------------------------------------


def test_bad_arguments_become_tool_errors(ctx):
    cases = [
        ({"command": 5}, "'command' must be a string, got number 5"),
        ({"command": "true", "timeout": "10"}, "'timeout' must be a number, got string"),
        ({"command": "true", "timeout": True}, "'timeout' must be a number, got boolean"),
        ({}, "missing required argument 'command'"),
    ]
    for args, message in cases:
        outcome = call(ctx, "execute_command", **args)
        assert outcome.error and outcome.result is None and message in outcome.text, outcome.text
    assert "missing required argument 'path'" in call(ctx, "read_file", raw="").text
    assert "must be a JSON object, not array" in call(ctx, "read_file", raw="[1]").text
    assert "'start_line' must be a number" in call(ctx, "read_file", path="x", start_line=[1]).text
    assert (
        "'respect_gitignore' must be a boolean"
        in call(ctx, "search_files", path=".", regex="x", kind="regex", respect_gitignore="yes").text
    )


def test_malformed_json_and_unknown_tools(ctx):
    outcome = call(ctx, "read_file", raw='{"path": "a.txt"')
    assert outcome.text.startswith("Error parsing tool arguments: ") and outcome.text.endswith('{"path": "a.txt"')
    assert outcome.error and outcome.result is None
    assert call(ctx, "read_file", raw='{"path": NaN}').text.startswith("Error parsing tool arguments")
    assert call(ctx, "no_such_tool", path=".") is None
    assert call(ctx, "apply_patch", model=CLAUDE, patch="x") is None  # not in Claude's tool set
