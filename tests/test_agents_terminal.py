"""Terminal streams over tmux control mode: chunk boundaries, snapshots, replay, pause, input.

The splitter and replay buffer are tested alone; everything else with real tmux, checking the
bytes a terminal client would render.
"""

from __future__ import annotations

import bisect
import os
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from miso_runtime.agents.control_mode import unescape_output
from miso_runtime.agents.pane_pipe import PipeFolder
from miso_runtime.agents.terminal import (
    EscapeSafeSplitter,
    ReplayBuffer,
    Snapshot,
    Subscription,
    TerminalClosedError,
    TerminalEvent,
    TerminalStream,
)
from miso_runtime.agents.terminal_hub import TerminalHub
from miso_runtime.agents.tmux_sessions import SessionNotFoundError, TmuxSessions
from workers.protocol.agents import TerminalAttach, TerminalClientMessage, TerminalOut

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

# --- the splitter, alone --------------------------------------------------------------------

# Tokens a chunk may end after but never inside: text, multi-byte characters, every kind of
# escape sequence the splitter knows.
TOKENS = [
    b"a",
    b"plain text ",
    b"\r\n",
    b"\t",
    "é".encode(),
    "✓".encode(),
    "😀".encode(),
    "日本".encode(),
    b"\x1b[31m",
    b"\x1b[1;44m",
    b"\x1b[38;5;208m",
    b"\x1b[38:2::1:2:3m",
    b"\x1b[?2004h",
    b"\x1b[0K",
    b"\x1b[12;40H",
    b"\x1b[3\r1m",  # a C0 control inside a CSI is executed, the CSI goes on
    b"\x1b]0;t\xc3\xadtle \xe2\x9c\x93\x07",  # OSC ended by BEL
    b"\x1b]8;;https://example.com/\x1b\\",  # OSC ended by ST
    b"\x1b]52;c;" + b"QUJD" * 40 + b"\x07",  # OSC 52 clipboard
    b"\x1bPtmux;\x1b\x1b[31m\x1b\\",  # DCS passthrough with a doubled ESC
    b"\x1b_app\x1b\\",  # APC
    b"\x1b7",
    b"\x1b8",
    b"\x1b=",
    b"\x1bM",
    b"\x1b(B",
    b"\x1b#8",
    b"\x1bOA",  # SS3 + one character
]


def token_stream(count: int, seed: int) -> tuple[bytes, list[int]]:
    """Random tokens joined, and every offset where a chunk may end."""
    rng = random.Random(seed)
    data = bytearray()
    boundaries = [0]
    for _ in range(count):
        token = rng.choice(TOKENS)
        # An escape sequence is one unit; text may end after any of its characters.
        units = [token] if token.startswith(b"\x1b") else [c.encode() for c in token.decode()]
        for unit in units:
            data += unit
            boundaries.append(len(data))
    return bytes(data), boundaries


def split_randomly(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    pieces, at = [], 0
    while at < len(data):
        size = rng.randint(1, largest)
        pieces.append(data[at : at + size])
        at += size
    return pieces


@pytest.mark.parametrize("largest", [1, 3, 17, 300])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_splitter_cuts_only_between_tokens_and_holds_nothing_more(seed, largest):
    data, boundaries = token_stream(1500, seed)
    safe = set(boundaries)
    splitter = EscapeSafeSplitter()
    fed = emitted = 0
    out = bytearray()
    for piece in split_randomly(data, random.Random(seed * 1000 + largest), largest):
        fed += len(piece)
        chunk = splitter.feed(piece)
        out += chunk
        emitted += len(chunk)
        assert emitted in safe, f"chunk ends inside a token at {emitted}: {data[emitted - 10 : emitted + 10]!r}"
        # Everything up to the last complete token has been let out: nothing is held needlessly.
        assert emitted == boundaries[bisect.bisect_right(boundaries, fed) - 1]
    assert splitter.flush() == b""
    assert bytes(out) == data


def test_splitter_holds_an_unfinished_sequence_until_it_ends():
    splitter = EscapeSafeSplitter()
    assert splitter.feed(b"ab\x1b[3") == b"ab"
    assert splitter.pending == b"\x1b[3"
    assert splitter.feed(b"1") == b""
    assert splitter.feed(b"mred \xe2\x9c") == b"\x1b[31mred "
    assert splitter.feed(b"\x93") == "✓".encode()
    assert splitter.feed(b"\x1b]0;title\x1b") == b""  # ESC inside an OSC may begin its ST
    assert splitter.feed(b"\\tail") == b"\x1b]0;title\x1b\\tail"


def test_splitter_edge_cases():
    splitter = EscapeSafeSplitter()
    assert splitter.feed(b"\x1b\x1b[1m") == b"\x1b\x1b[1m"  # a lone ESC before another sequence
    assert splitter.feed(b"\x1b[12\x18x") == b"\x1b[12\x18x"  # CAN cancels the CSI
    assert splitter.feed(b"\x1b]0;a\x1b[2J") == b"\x1b]0;a\x1b[2J"  # ESC [ ends the OSC, starts a CSI
    assert splitter.feed(b"\x1b") == b""
    assert splitter.flush() == b"\x1b"  # the end of the stream lets everything out
    assert splitter.feed(b"\xff\xfe ok") == b"\xff\xfe ok"  # not UTF-8: nothing to wait for


def test_splitter_lets_an_endless_sequence_through():
    splitter = EscapeSafeSplitter(max_pending=64)
    assert splitter.feed(b"x\x1b]0;" + b"y" * 40) == b"x"
    released = splitter.feed(b"y" * 40)
    assert released == b"\x1b]0;" + b"y" * 80
    assert splitter.feed(b"z") == b"z"


def test_octal_escapes_of_control_mode_are_undone():
    assert unescape_output(rb"red \033[31mx\033[0m\015\012back\134slash") == b"red \x1b[31mx\x1b[0m\r\nback\\slash"
    assert unescape_output("h\u00e9".encode()) == "h\u00e9".encode()  # high bytes come raw


# --- the replay buffer, alone ---------------------------------------------------------------


def test_replay_buffer_numbers_bounds_and_replays():
    buffer = ReplayBuffer(max_chunks=3, max_bytes=100)
    assert buffer.since(0) == [] and buffer.last_seq == 0
    for data in (b"one", b"two", b"three"):
        buffer.append(data)
    assert [c.seq for c in buffer.since(0)] == [1, 2, 3]
    assert [c.data for c in buffer.since(1)] == [b"two", b"three"]
    assert buffer.since(3) == [] and buffer.lag_bytes(1) == 8
    buffer.append(b"four")  # the fourth chunk pushes out the first
    assert buffer.since(0) is None and buffer.lag_bytes(0) is None
    assert [c.seq for c in buffer.since(1)] == [2, 3, 4]
    assert buffer.since(9) is None  # a seq from some other stream
    buffer.append(b"x" * 90)  # over the byte bound: only what fits stays
    assert buffer.oldest_seq == 3 and buffer.total_bytes == 3 + 3 + 5 + 4 + 90
    assert [c.seq for c in buffer.since(3, max_bytes=10)] == [4]  # at least one, then up to max_bytes


def test_redraw_restores_alternate_screen_cursor_and_modes():
    snap = Snapshot(
        seq=5,
        cols=20,
        rows=3,
        cursor_x=4,
        cursor_y=1,
        cursor_visible=False,
        alternate_screen=True,
        history="old",
        screen="alt\n\n",
        saved_screen="main\n\n",
        modes={"keypad_cursor_flag": 1, "mouse_sgr_flag": 1, "scroll_region_upper": 0, "scroll_region_lower": 2},
    )
    assert snap.to_ansi() == (
        "\x1bcold\r\n\x1b[0mmain\r\n\r\n\x1b[0m\x1b[?1049h\x1b[Halt\r\n\r\n\x1b[0m\x1b[2;5H\x1b[?1h\x1b[?1006h\x1b[?25l"
    )


# --- with real tmux -------------------------------------------------------------------------

_COMPLETE_ESCAPE = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|[ -/]*[0-~])")


def ends_cleanly(data: bytes) -> bool:
    """A chunk is whole UTF-8 and its last escape sequence is complete (CSI or short ESC)."""
    data.decode("utf-8")  # raises on a split character
    last = data.rfind(b"\x1b")
    return last < 0 or _COMPLETE_ESCAPE.match(data, last) is not None


def collect(sub: Subscription, until: Callable[[bytes], bool], timeout: float = 8.0) -> tuple[bytes, list]:
    """Appends from ``sub`` until ``until(all bytes so far)``; fails on anything else."""
    data, events = b"", []
    deadline = time.monotonic() + timeout
    while not until(data):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; last bytes {data[-300:]!r}"
        event = sub.get(remaining)
        if event is None:
            continue
        assert event.type == "append", event
        events.append(event)
        data += event.data
    return data, events


def wait_until(check: Callable[[], object], timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
    return value


def numbers(data: bytes) -> list[int]:
    """The lines of ``data`` that are just a number (``seq`` output), escape sequences ignored."""
    text = re.sub(rb"\x1b\[[0-?]*[ -/]*[@-~]", b"", data)
    return [int(line) for line in re.split(rb"[\r\n]+", text) if line.isdigit()]


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def tmux() -> Iterator[TmuxSessions]:
    manager = TmuxSessions(f"miso-test-{os.getpid()}-{uuid.uuid4().hex[:8]}", config_file="/dev/null")
    yield manager
    manager.kill_server()
    assert not manager.server_running() and not manager.socket_path.exists()


@pytest.fixture
def open_stream(tmux) -> Iterator[Callable[..., TerminalStream]]:
    """Opens streams; closes them after the test and checks no control-mode client is left."""
    streams: list[TerminalStream] = []

    def open_(name: str, **kwargs) -> TerminalStream:
        stream = TerminalStream(tmux, name, **kwargs).start()
        streams.append(stream)
        return stream

    yield open_
    for stream in streams:
        stream.close()
        assert stream.pid is None or process_gone(stream.pid)


PROMPT = (b"# ", b"$ ")  # how bash's default prompt ends (root or not)


def shell(tmux: TmuxSessions, tmp_path, name: str = "term", **kwargs) -> str:
    kwargs.setdefault("history_limit", 50_000)
    return tmux.create(name, "bash --norc", tmp_path, **kwargs).name


def watched_shell(tmux: TmuxSessions, open_stream, tmp_path) -> tuple[str, TerminalStream, Subscription]:
    """A bash session with a stream and one subscriber that has had its ``full``."""
    name = shell(tmux, tmp_path)
    stream = open_stream(name)
    sub = stream.subscribe()
    sub.get(5)
    return name, stream, sub


def display(tmux: TmuxSessions, name: str, fmt: str) -> str:
    return tmux.run("display-message", "-p", "-t", tmux.target(name), fmt).strip()


@needs_tmux
def test_typed_command_is_echoed_through_the_stream(tmux, open_stream, tmp_path):
    stream = open_stream(shell(tmux, tmp_path))
    sub = stream.subscribe()
    full = sub.get(5)
    assert full.type == "full" and full.content.startswith("\x1bc")
    stream.send_input("echo hello-$((6*7))\r")
    data, events = collect(sub, lambda d: b"hello-42\r\n" in d)
    assert b"echo hello-$((6*7))" in data  # the keys as typed, echoed by the shell
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)) and seqs[0] > full.seq
    assert events[-1].to_message() == {"type": "append", "content": events[-1].content, "seq": seqs[-1]}


@needs_tmux
def test_utf8_and_colours_arrive_intact_and_unsplit(tmux, open_stream, tmp_path):
    stream = open_stream(shell(tmux, tmp_path))
    sub = stream.subscribe()
    sub.get(5)
    stream.send_input(
        r"printf 'h\xc3\xa9llo \xe2\x9c\x93\n'; printf '\033[31mred\033[0m\n'; "
        r"for i in $(seq 1 1500); do printf '\033[3%dm%04d h\xc3\xa9llo \xe2\x9c\x93\033[0m\n' $((i % 8)) $i; done;"
        " echo end-$((1+1))\r"
    )
    data, events = collect(sub, lambda d: b"end-2\r\n" in d)
    assert "héllo ✓\r\n".encode() in data
    assert b"\x1b[31mred\x1b[0m\r\n" in data
    at = 0
    for i in range(1, 1501):  # every line, in order, byte for byte
        line = f"\x1b[3{i % 8}m{i:04d} héllo ✓\x1b[0m\r\n".encode()
        at = data.index(line, at) + len(line)
    assert all(ends_cleanly(e.data) for e in events)
    assert all("\ufffd" not in e.content for e in events)


@needs_tmux
def test_large_output_arrives_complete_and_in_order(tmux, open_stream, tmp_path):
    stream = open_stream(shell(tmux, tmp_path))
    sub = stream.subscribe()
    full = sub.get(5)
    stream.send_input("seq 1 20000; echo seq-$((2*5))-done\r")
    data, events = collect(sub, lambda d: b"seq-10-done\r\n" in d, timeout=15)
    assert numbers(data) == list(range(1, 20001))
    chunks = stream.replay_since(full.seq)  # the stream's own numbering: 1, 2, 3... no gaps
    assert [c.seq for c in chunks] == list(range(full.seq + 1, full.seq + 1 + len(chunks)))
    assert b"".join(c.data for c in chunks).startswith(data)
    assert [e.seq for e in events] == sorted({e.seq for e in events})


@needs_tmux
def test_snapshot_has_colours_scrollback_and_cursor(tmux, open_stream, tmp_path):
    name = shell(tmux, tmp_path, width=50, height=8)
    stream = open_stream(name)
    sub = stream.subscribe()
    sub.get(5)
    stream.send_input(r"printf '\033[31mred\033[0m\n'; seq 1 30; printf 'tail-%s' $((3*3))" + "\r")
    collect(sub, lambda d: b"tail-9" in d and d.endswith(PROMPT))  # and then nothing more
    snap = stream.snapshot(scrollback_lines=100)
    assert snap.seq == stream.last_seq and (snap.cols, snap.rows) == (50, 8)
    assert "\x1b[31mred" in snap.history  # scrolled off the 8-row screen, with its colour
    assert numbers(snap.history.encode()) == list(range(1, 24))  # the rest fits on the screen
    assert snap.screen.split("\n")[-1].startswith("tail-9")  # (the prompt follows on the same row)
    assert (snap.cursor_x, snap.cursor_y) == tuple(
        int(v) for v in display(tmux, name, "#{cursor_x},#{cursor_y}").split(",")
    )
    full = stream.subscribe().get(5)  # what a new client gets
    assert full.type == "full" and "\x1b[31mred" in full.content and "\r\n2\r\n3\r\n4\r\n" in full.content


@needs_tmux
@pytest.mark.parametrize("alternate", [False, True])
def test_full_redraw_reproduces_the_pane(tmux, open_stream, tmp_path, alternate):
    """Play the ``full`` content into a second tmux pane of the same size: same cells, same cursor."""
    if alternate:  # a full-screen program: main screen underneath, cursor hidden, app cursor keys
        script = (
            r"printf '\033[1;32mmain\033[0m screen\n'; printf '\033[?1049h\033[44mon alt\033[0m\n  é✓\033[3;7H"
            r"\033[?25l\033[?1h'; exec sleep 60"
        )
        tmux.create("orig", ["sh", "-c", script], tmp_path, width=40, height=6)
        wait_until(lambda: display(tmux, "orig", "#{alternate_on}#{cursor_flag}#{cursor_y}") == "102")
    else:
        tmux.create("orig", "bash --norc", tmp_path, width=40, height=6)
        tmux.send_input("orig", r"printf '\033[1;32mgreen\033[0m \033[44mblue\033[0m h\xc3\xa9\n'; seq 1 12" + "\r")
        wait_until(lambda: "12" in tmux.capture("orig", escapes=False).split("\n"))
    snap = open_stream("orig").snapshot(scrollback_lines=100)
    redraw = tmp_path / "redraw"
    redraw.write_bytes(snap.to_ansi().encode("utf-8"))
    tmux.create("copy", ["sh", "-c", f"stty -onlcr; cat '{redraw}'; exec sleep 60"], tmp_path, width=40, height=6)

    def same(fmt: str) -> bool:
        return display(tmux, "copy", fmt) == display(tmux, "orig", fmt)

    state = "#{cursor_x},#{cursor_y},#{cursor_flag},#{alternate_on},#{keypad_cursor_flag}"
    wait_until(
        lambda: same(state) and tmux.capture("copy", scrollback_lines=100) == tmux.capture("orig", scrollback_lines=100)
    )
    if alternate:
        under = ["capture-pane", "-p", "-e", "-a", "-t"]
        assert tmux.run(*under, "=copy:") == tmux.run(*under, "=orig:")  # the main screen underneath
        assert "on alt" in snap.screen and "main" in snap.saved_screen


def lines_seen(full: TerminalEvent, streamed: bytes) -> tuple[list[int], int]:
    """Numbers of the ``line<N>`` a client sees: in its ``full`` up to the cursor, then in
    what was streamed after it; and how many of them the ``full`` showed."""
    snap = full.snapshot
    rows = snap.screen.split("\n")
    shown = snap.history.split("\n") if snap.history else []
    shown += rows[: snap.cursor_y] + [rows[snap.cursor_y][: snap.cursor_x]]
    text = "\n".join(shown) + streamed.decode().replace("\r\n", "\n")
    in_snapshot = len([line for line in shown if line.startswith("line")])
    return [int(m) for m in re.findall(r"^line(\d+)$", text, re.M)], in_snapshot


def shown_and_streamed_lines(sub: Subscription, done: bytes) -> tuple[list[int], int]:
    full = sub.get(5)
    streamed, _ = collect(sub, lambda d: done in d, timeout=15)
    return lines_seen(full, streamed)


@needs_tmux
def test_no_gap_and_no_duplicate_between_snapshot_and_stream(tmux, open_stream, tmp_path):
    """Clients join programs that print fast, at different moments: snapshot + stream must hold
    every line exactly once."""
    count = 3000
    producer = f"import time\nfor i in range(1, {count + 1}):\n    print(f'line{{i}}', flush=True)\n"
    producer += "    time.sleep(0.0003)\nprint('producer-done', flush=True)\ntime.sleep(60)\n"
    in_snapshot = []
    for delay in (0.0, 0.15, 0.3, 0.45, 0.6):
        name = f"busy{int(delay * 100)}"
        tmux.create(name, [sys.executable, "-u", "-c", producer], tmp_path, history_limit=50_000, height=10)
        stream = open_stream(name)
        time.sleep(delay)
        got, shown = shown_and_streamed_lines(stream.subscribe(scrollback_lines=50_000), b"producer-done")
        assert got == list(range(1, count + 1))
        in_snapshot.append(shown)
    assert any(0 < n < count for n in in_snapshot), in_snapshot  # some client joined mid-output


@needs_tmux
def test_a_new_snapshot_redraws_the_other_clients_and_loses_nothing(tmux, open_stream, tmp_path):
    """Each snapshot starts a new pipe (tmux drops what the old one still held): clients of the
    old one get the new ``full`` and go on from it, still with every line exactly once."""
    count = 3000
    producer = f"import time\nfor i in range(1, {count + 1}):\n    print(f'line{{i}}', flush=True)\n"
    producer += "    time.sleep(0.0003)\nprint('producer-done', flush=True)\ntime.sleep(60)\n"
    tmux.create("busy", [sys.executable, "-u", "-c", producer], tmp_path, history_limit=50_000, height=10)
    stream = open_stream("busy")
    first = stream.subscribe(scrollback_lines=50_000)
    assert first.get(5).type == "full"
    epoch = first.epoch
    time.sleep(0.3)
    second = stream.subscribe(scrollback_lines=50_000)  # mid-output, not displacing
    events = []
    while not events or b"producer-done" not in events[-1].data:
        event = first.get(5)
        assert event is not None and event.type in ("append", "full")
        events.append(event)
    redraws = [i for i, e in enumerate(events) if e.type == "full"]
    assert len(redraws) == 1 and first.epoch == stream.epoch != epoch
    redraw = events[redraws[0]]
    assert redraw.content == second.get(5).content  # the same redraw as the new client's
    after_redraw = b"".join(e.data for e in events[redraws[0] + 1 :])
    assert lines_seen(redraw, after_redraw)[0] == list(range(1, count + 1))
    streamed, _ = collect(second, lambda d: b"producer-done" in d, timeout=15)
    assert streamed == after_redraw


@needs_tmux
def test_someone_else_taking_the_pipe_makes_clients_resync(tmux, open_stream, tmp_path):
    name, stream, sub = watched_shell(tmux, open_stream, tmp_path)
    tmux.run("pipe-pane", "-t", tmux.target(name), "cat >/dev/null")  # replaces ours
    event = sub.get(5)
    assert event.type == "reconnect" and sub.done
    again = stream.subscribe(last_seq=event.seq, epoch=sub.epoch)  # a fresh full, a working pipe
    assert again.get(5).type == "full"
    stream.send_input("echo back-$((2*4))\r")
    collect(again, lambda d: b"back-8\r\n" in d)


@needs_tmux
def test_reconnect_replays_exactly_what_was_missed(tmux, open_stream, tmp_path):
    stream = open_stream(shell(tmux, tmp_path))
    first = stream.subscribe()
    first.get(5)
    stream.send_input("seq 1 50; echo part-$((1))\r")
    collect(first, lambda d: b"part-1\r\n" in d)
    last_seq = first.last_seq
    first.close()  # the client goes away...
    stream.send_input("seq 51 100; echo part-$((2))\r")
    wait_until(lambda: b"part-2\r\n" in b"".join(c.data for c in stream.replay_since(last_seq)))

    again = stream.subscribe(last_seq=last_seq, epoch=stream.epoch)  # ...and comes back
    data, events = collect(again, lambda d: b"part-2\r\n" in d)
    assert events[0].type == "append"  # no full redraw needed
    assert b"part-1\r\n" not in data  # nothing it already had
    assert numbers(data) == list(range(51, 101))  # everything it missed
    assert stream.subscribe(last_seq=last_seq, epoch="another-stream").get(5).type == "full"


@needs_tmux
def test_reconnect_too_late_gets_a_fresh_full(tmux, open_stream, tmp_path):
    stream = open_stream(shell(tmux, tmp_path), replay_max_bytes=2000)
    first = stream.subscribe()
    first.get(5)
    last_seq = first.last_seq
    first.close()
    # Output in several bursts (so several chunks), far more than the replay buffer holds.
    stream.send_input("for i in 1 2 3 4; do seq 1 1000; sleep 0.1; done; echo gone-$((4))\r")
    wait_until(lambda: b"gone-4\r\n" in b"".join(c.data for c in stream.buffer.since(stream.buffer.oldest_seq - 1)))
    assert stream.replay_since(last_seq) is None
    event = stream.subscribe(last_seq=last_seq, epoch=stream.epoch).get(5)
    assert event.type == "full" and "gone-4" in event.content and "\r\n1000\r\n" in event.content


@needs_tmux
def test_pause_holds_output_and_resume_delivers_all_of_it(tmux, open_stream, tmp_path):
    stream = open_stream(shell(tmux, tmp_path))
    sub = stream.subscribe()
    sub.get(5)
    sub.pause()
    stream.send_input("seq 1 2000; echo paused-$((3))\r")
    wait_until(lambda: b"paused-3\r\n" in b"".join(c.data for c in stream.replay_since(sub.last_seq)))
    assert sub.get(0.2) is None  # nothing while paused
    sub.resume()
    data, _ = collect(sub, lambda d: b"paused-3\r\n" in d)
    assert numbers(data) == list(range(1, 2001))


@needs_tmux
def test_paused_client_too_far_behind_must_resync(tmux, open_stream, tmp_path):
    stream = open_stream(shell(tmux, tmp_path))
    sub = stream.subscribe(max_paused_bytes=2000)
    sub.get(5)
    sub.pause()
    stream.send_input("seq 1 5000\r")
    event = sub.get(5)
    assert event.type == "reconnect" and event.to_message()["type"] == "reconnect"
    assert sub.done and sub.get(0) is None


@needs_tmux
def test_new_window_displaces_the_old_one(tmux, open_stream, tmp_path):
    stream = open_stream(shell(tmux, tmp_path))
    old = stream.subscribe()
    assert old.get(5).type == "full"
    new = stream.subscribe(displace=True)
    assert new.get(5).type == "full"
    assert old.get(5).type == "displaced" and old.done
    stream.send_input("echo still-$((5))\r")
    collect(new, lambda d: b"still-5\r\n" in d)  # the new window goes on


@needs_tmux
def test_control_keys_reach_the_program(tmux, open_stream, tmp_path):
    name, stream, sub = watched_shell(tmux, open_stream, tmp_path)
    stream.send_input("sleep 30\r")
    wait_until(lambda: display(tmux, name, "#{pane_current_command}") == "sleep")
    stream.send_input(b"\x03")  # Ctrl-C
    collect(sub, lambda d: b"^C" in d)
    stream.send_input("echo one-$((1))\r")
    collect(sub, lambda d: b"one-1\r\n" in d)
    stream.send_input(b"\x1b[A\r")  # arrow up, Enter: the same command again
    collect(sub, lambda d: b"one-1\r\n" in d)


@needs_tmux
def test_resize_reaches_the_program(tmux, open_stream, tmp_path):
    name = shell(tmux, tmp_path, width=80, height=24)
    stream = open_stream(name)
    sub = stream.subscribe()
    sub.get(5)
    stream.resize(100, 20)
    assert display(tmux, name, "#{window_width}x#{window_height}") == "100x20"
    stream.send_input("echo size=$(tput cols)x$(tput lines)\r")
    collect(sub, lambda d: b"size=100x20\r\n" in d)


@needs_tmux
def test_killed_session_ends_stream_and_control_client(tmux, open_stream, tmp_path):
    name, stream, sub = watched_shell(tmux, open_stream, tmp_path)
    pid = stream.pid
    tmux.kill(name)
    event = sub.get(5)
    assert isinstance(event, TerminalEvent) and event.type == "closed"
    assert stream.closed and wait_until(lambda: process_gone(pid))
    with pytest.raises(TerminalClosedError) as err:
        stream.send_input("x")
    assert err.value.status == 410
    with pytest.raises(TerminalClosedError):
        stream.subscribe()


@needs_tmux
def test_close_detaches_and_leaves_no_process(tmux, tmp_path):
    name = shell(tmux, tmp_path)
    with TerminalStream(tmux, name) as stream:
        sub = stream.subscribe()
        sub.get(5)
        assert tmux.run("list-clients", "-F", "#{client_control_mode}").split() == ["1"]
        assert display(tmux, name, "#{pane_pipe}") == "1"  # the output pipe
        pid = stream.pid
        fifos = stream._folder.path
    assert process_gone(pid)
    assert tmux.run("list-clients").strip() == ""
    assert display(tmux, name, "#{pane_pipe}") == "0" and not fifos.exists()
    assert sub.get(1).type == "closed"
    assert tmux.get(name).running  # the agent itself goes on
    with pytest.raises(SessionNotFoundError):
        TerminalStream(tmux, "no-such-session").start()


@needs_tmux
def test_hub_keeps_a_stream_for_a_returning_client_then_closes_it(tmux, tmp_path):
    """The last viewer leaving does not end the stream at once: one that comes back in time
    resumes where it was; after ``linger_s`` with nobody, the control client is gone."""
    sent: list[TerminalOut] = []
    hub = TerminalHub(tmux, sent.append, linger_s=1.0)
    name = shell(tmux, tmp_path, name="hubbed")
    clients = lambda: tmux.run("list-clients", "-F", "#{client_control_mode}").split()  # noqa: E731
    try:
        hub.attach(TerminalAttach("a", name, 100))
        full = wait_until(lambda: next((o.message for o in sent if o.message["type"] == "full"), None))
        hub.message(TerminalClientMessage("a", "input", "echo left-$((2+3))\r"))
        wait_until(lambda: any("left-5\r\n" in o.message.get("content", "") for o in sent))
        last_seq = max(o.message["seq"] for o in sent if o.stream_id == "a")
        hub.detach("a")
        tmux.send_input(name, "echo away-$((3+4))\r")
        hub.attach(TerminalAttach("b", name, 100, last_seq, full["epoch"]))
        back = lambda: [o.message for o in sent if o.stream_id == "b"]  # noqa: E731
        first = wait_until(back)[0]
        assert first["type"] == "append" and first["seq"] > last_seq  # no redraw: the missed output
        wait_until(lambda: "away-7\r\n" in "".join(m["content"] for m in back() if m["type"] == "append"))
        assert "left-5" not in "".join(m["content"] for m in back())  # and nothing it had
        hub.detach("b")
        assert clients() == ["1"]  # still there, for a while
        wait_until(lambda: clients() == [], timeout=5)
    finally:
        hub.close_all()


def test_fifo_folders_left_by_a_killed_process_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    orphan = tmp_path / "miso-terminal-999999999-x1"  # no such process
    orphan.mkdir()
    (orphan / "pane-1.fifo").write_text("")
    living = tmp_path / f"miso-terminal-{os.getppid()}-x2"
    living.mkdir()
    folder = PipeFolder()
    assert folder.path.parent == tmp_path and folder.path.name.startswith(f"miso-terminal-{os.getpid()}-")
    assert not orphan.exists() and living.exists()
    folder.remove()
    assert not folder.path.exists()
