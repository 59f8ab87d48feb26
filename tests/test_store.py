"""The SQLite store: WAL, numbered migrations, and the conversation store on real SQLite."""

from __future__ import annotations

import multiprocessing
import sqlite3

from miso_runtime.store import ConversationStore, open_database
from miso_runtime.store.migrations import MIGRATIONS


def test_database_is_wal_with_busy_timeout_and_all_migrations(tmp_path):
    db = open_database(tmp_path / "miso.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    applied = [row[0] for row in db.execute("SELECT number FROM _migrations ORDER BY number")]
    assert applied == list(range(1, len(MIGRATIONS) + 1))
    assert {"threads", "messages", "thread_events", "auth_tokens"} <= set(db.table_names())


def test_migrations_run_once(tmp_path):
    open_database(tmp_path / "miso.db")
    again = open_database(tmp_path / "miso.db")
    count = again.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0]
    assert count == len(MIGRATIONS)


def _open_and_write(path: str, index: int) -> None:
    from pathlib import Path

    store = ConversationStore(open_database(Path(path)))
    thread, _ = store.ensure_thread(f"t{index}", "miso")
    for n in range(20):
        store.append_message(thread.id, "user", f"{index}-{n}")


def test_processes_share_the_database(tmp_path):
    path = str(tmp_path / "miso.db")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open_and_write, args=(path, i)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 80
        assert db.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)


def test_conversation_store(tmp_path):
    store = ConversationStore(open_database(tmp_path / "miso.db"))
    thread, created = store.ensure_thread(None, "miso", title="first question")
    assert created and thread.face == "miso" and thread.title == "first question"
    same, created_again = store.ensure_thread(thread.id, "miso")
    assert not created_again and same.id == thread.id

    store.append_message(thread.id, "user", "hello")
    store.append_message(
        thread.id,
        "assistant",
        "hi th",
        status="cancelled",
        provider="openai",
        model="m",
        usage={"completion_tokens": 2},
    )
    store.append_message(thread.id, "assistant", "", status="error")
    messages = store.messages(thread.id)
    assert [(m.seq, m.role, m.status) for m in messages] == [
        (1, "user", "complete"),
        (2, "assistant", "cancelled"),
        (3, "assistant", "error"),
    ]
    assert messages[1].usage == {"completion_tokens": 2}
    assert [m.content for m in store.messages(thread.id, ("complete", "cancelled"))] == ["hello", "hi th"]

    first = store.append_event(thread.id, "reply", {"status": "cancelled"})
    second = store.append_event(thread.id, "reply", {"status": "complete"})
    assert (first.seq, second.seq) == (1, 2)
    assert [e.payload["status"] for e in store.events(thread.id, after_seq=1)] == ["complete"]
    assert store.list_threads("miso")[0].id == thread.id
    assert store.list_threads("maria") == []
