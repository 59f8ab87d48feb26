"""Numbered schema migrations.

Each migration is a function that takes the database and changes it once; its number is its
position in :data:`MIGRATIONS` (starting at 1). The applied numbers are kept in
``_migrations``, so each process can call :func:`migrate` at start-up safely: an
``IMMEDIATE`` transaction makes concurrent starters wait for each other.

Add a migration by appending a function; never edit one that has shipped.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import sqlite_utils

logger = logging.getLogger(__name__)

Migration = Callable[[sqlite_utils.Database], None]


def _conversations(db: sqlite_utils.Database) -> None:
    """Threads, their messages, and a per-thread event log.

    One conversation store serves three faces: Miso chat threads, Caco sessions and Maria
    tasks; ``face`` says which one created a thread. ``thread_events`` is the append-only log
    that later contracts replay (task events, session events); ``seq`` orders it per thread.
    """
    db["threads"].create(
        {
            "id": str,
            "face": str,
            "title": str,
            "created_at_ms": int,
            "updated_at_ms": int,
            "metadata": str,
        },
        pk="id",
        not_null={"face", "created_at_ms", "updated_at_ms"},
        defaults={"title": "", "metadata": "{}"},
    )
    db["messages"].create(
        {
            "id": int,
            "thread_id": str,
            "seq": int,
            "role": str,
            "content": str,
            "status": str,
            "provider": str,
            "model": str,
            "usage": str,
            "created_at_ms": int,
        },
        pk="id",
        foreign_keys=[("thread_id", "threads", "id")],
        not_null={"thread_id", "seq", "role", "content", "status", "created_at_ms"},
    )
    db["messages"].create_index(["thread_id", "seq"], unique=True)
    db["thread_events"].create(
        {
            "id": int,
            "thread_id": str,
            "seq": int,
            "type": str,
            "payload": str,
            "created_at_ms": int,
        },
        pk="id",
        foreign_keys=[("thread_id", "threads", "id")],
        not_null={"thread_id", "seq", "type", "payload", "created_at_ms"},
    )
    db["thread_events"].create_index(["thread_id", "seq"], unique=True)


def _auth_tokens(db: sqlite_utils.Database) -> None:
    """Issued API tokens: only a SHA-256 hash of each token is kept."""
    db["auth_tokens"].create(
        {
            "id": str,
            "name": str,
            "acl": str,
            "token_hash": str,
            "created_at_ms": int,
            "expires_at_ms": int,
            "revoked_at_ms": int,
            "last_used_at_ms": int,
        },
        pk="id",
        not_null={"name", "acl", "token_hash", "created_at_ms"},
    )
    db["auth_tokens"].create_index(["token_hash"], unique=True)


def _eeg(db: sqlite_utils.Database) -> None:
    """Known EEG devices, recording sessions and their epochs.

    A session's raw samples live in its recording file (``recording_path``, relative to the
    data dir) in the row layout of ``data_board_id`` (the master board of a playback);
    ``status`` is ``recording`` until the session ends, so a session still marked
    ``recording`` at start-up was cut by a crash and is closed from its file. Epoch metrics are
    stored twice on purpose: channel means in columns (what range queries aggregate in SQL)
    and per channel in ``metrics`` JSON. ``embedding`` stays empty until an encoder fills it.
    """
    db["eeg_devices"].create(
        {
            "id": str,
            "board_id": int,
            "board_name": str,
            "params": str,
            "preferred": int,
            "first_seen_ms": int,
            "last_seen_ms": int,
        },
        pk="id",
        not_null={"board_id", "board_name", "params", "preferred", "first_seen_ms", "last_seen_ms"},
        defaults={"params": "{}", "preferred": 0},
    )
    db["eeg_sessions"].create(
        {
            "id": str,
            "device_id": str,
            "board_id": int,
            "data_board_id": int,
            "board_name": str,
            "sample_rate_hz": float,
            "channel_names": str,
            "started_utc_ms": int,
            "ended_utc_ms": int,
            "n_samples": int,
            "n_epochs": int,
            "status": str,
            "end_reason": str,
            "recording_path": str,
            "location": str,
            "epoch_s": float,
            "overlap_s": float,
        },
        pk="id",
        not_null={"board_id", "data_board_id", "board_name", "started_utc_ms", "status", "recording_path"},
        defaults={"n_samples": 0, "n_epochs": 0, "channel_names": "[]"},
    )
    db["eeg_sessions"].create_index(["started_utc_ms"])
    db["eeg_sessions"].create_index(["status"])
    columns: dict[str, type] = {
        "id": int,
        "session_id": str,
        "start_utc_ms": int,
        "end_utc_ms": int,
        "n_windows": int,
    }
    for band in ("delta", "theta", "alpha", "beta", "gamma"):
        columns[f"abs_{band}"] = float
        columns[f"rel_{band}"] = float
    for score in ("relaxation", "engagement", "alpha_theta", "theta_beta", "frontal_alpha_asymmetry"):
        columns[score] = float
    columns.update({"metrics": str, "embedding": bytes, "embedding_model": str})
    db["eeg_epochs"].create(
        columns,
        pk="id",
        foreign_keys=[("session_id", "eeg_sessions", "id")],
        not_null={"session_id", "start_utc_ms", "end_utc_ms", "metrics"},
    )
    db["eeg_epochs"].create_index(["start_utc_ms"])
    db["eeg_epochs"].create_index(["session_id", "start_utc_ms"])


def _embeddings_and_labels(db: sqlite_utils.Database) -> None:
    """Epoch embeddings (one row per epoch and encoder) and labels with their three vectors.

    ``eeg_embeddings.id`` is AUTOINCREMENT, so an id is never reused: search indices name rows
    by id, and a vector that is replaced gets a new id (the old one simply stops resolving).
    ``start_utc_ms`` repeats the epoch's start so range queries and UTC days need no join.
    ``eeg_epochs.embedding``/``embedding_model`` (migration 3) stay unused: one column cannot
    hold vectors of two encoders.
    """
    db.execute(
        "CREATE TABLE eeg_embeddings ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " epoch_id INTEGER NOT NULL REFERENCES eeg_epochs(id) ON DELETE CASCADE,"
        " encoder TEXT NOT NULL,"
        " dim INTEGER NOT NULL,"
        " vector BLOB NOT NULL,"
        " start_utc_ms INTEGER NOT NULL,"
        " created_ms INTEGER NOT NULL,"
        " UNIQUE (epoch_id, encoder))"
    )
    db.execute("CREATE INDEX eeg_embeddings_encoder_time ON eeg_embeddings (encoder, start_utc_ms)")
    db.execute("CREATE INDEX eeg_embeddings_encoder_id ON eeg_embeddings (encoder, id)")
    db.execute(
        "CREATE TABLE labels ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " text TEXT NOT NULL,"
        " context TEXT NOT NULL DEFAULT '',"
        " eeg_start INTEGER NOT NULL,"
        " eeg_end INTEGER NOT NULL,"
        " label_start REAL NOT NULL,"
        " label_end REAL NOT NULL,"
        " created_at REAL NOT NULL,"
        " updated_ms INTEGER NOT NULL,"
        " embedding_model TEXT,"
        " text_vector BLOB,"
        " context_vector BLOB,"
        " eeg_encoder TEXT,"
        " eeg_vector BLOB)"
    )
    db.execute("CREATE INDEX labels_eeg_window ON labels (eeg_start, eeg_end)")
    db.execute("CREATE INDEX labels_created ON labels (created_at)")


def _sleep_stagings(db: sqlite_utils.Database) -> None:
    """Sleep stagings of whole sessions, one per session, method, method version and channel setting.

    A staging is computed once per key and then answered from here; a change of method,
    version (a new YASA classifier) or channel setting is a new key, so nothing is ever stale
    and nothing needs invalidating. ``n_samples`` is the session's sample count when it was
    staged: a session whose count changed since is staged again. A session that cannot be
    staged keeps a ``failed`` row with its ``code``, so it is not retried at every request.
    ``sleep_epochs`` holds the 30 s epochs with YASA's stage probabilities; epochs are
    removed with their staging, and stagings with their session.
    """
    db.execute(
        "CREATE TABLE sleep_stagings ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " session_id TEXT NOT NULL REFERENCES eeg_sessions(id) ON DELETE CASCADE,"
        " method TEXT NOT NULL,"
        " version TEXT NOT NULL,"
        " channel_request TEXT NOT NULL,"
        " channel TEXT,"
        " channel_reason TEXT,"
        " status TEXT NOT NULL,"
        " code TEXT,"
        " message TEXT,"
        " n_samples INTEGER NOT NULL,"
        " recorded_s REAL,"
        " expected_s REAL,"
        " truncated INTEGER NOT NULL DEFAULT 0,"
        " epoch_s REAL NOT NULL,"
        " n_epochs INTEGER NOT NULL DEFAULT 0,"
        " elapsed_ms REAL,"
        " created_ms INTEGER NOT NULL,"
        " UNIQUE (session_id, method, version, channel_request))"
    )
    db.execute(
        "CREATE TABLE sleep_epochs ("
        " staging_id INTEGER NOT NULL REFERENCES sleep_stagings(id) ON DELETE CASCADE,"
        " idx INTEGER NOT NULL,"
        " start_utc_ms INTEGER NOT NULL,"
        " stage INTEGER NOT NULL,"
        " confidence REAL,"
        " p_wake REAL, p_n1 REAL, p_n2 REAL, p_n3 REAL, p_rem REAL,"
        " rel_delta REAL, rel_theta REAL, rel_alpha REAL, rel_beta REAL,"
        " PRIMARY KEY (staging_id, idx)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX sleep_stagings_session ON sleep_stagings (session_id)")


def _caco_applet_state(db: sqlite_utils.Database) -> None:
    """Caco's applet state: one JSON object per key (``state``, ``navigation``).

    In the store rather than in the server's memory because a session's agent changes and
    reads it from its own process (``set_applet_state``, ``get_applet_state``).
    """
    db["caco_applet_state"].create({"key": str, "value": str, "updated_at_ms": int}, pk="key", not_null={"value"})


def _hook_log(db: sqlite_utils.Database) -> None:
    """Fired hooks: when, the rule as it was, what matched, and what its command did.

    The three ``*_json`` columns are answered as they are stored (the daemon's log rows); the
    command's outcome is added to ``payload_json`` when it ends.
    """
    db.execute(
        "CREATE TABLE hook_log ("
        " id INTEGER PRIMARY KEY,"
        " triggered_at_utc INTEGER NOT NULL,"
        " triggered_at_ms INTEGER NOT NULL,"
        " hook_name TEXT NOT NULL,"
        " hook_json TEXT NOT NULL,"
        " trigger_json TEXT NOT NULL,"
        " payload_json TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX hook_log_name ON hook_log (hook_name, id)")


def _screenshots(db: sqlite_utils.Database) -> None:
    """Kept screen captures: when, the WebP file, the active window, the OCR text and its vector.

    ``timestamp`` is ``YYYYMMDDHHmmss`` UTC and ``unix_ts`` UNIX seconds (the daemon's pair);
    ``filename`` is relative to the screenshots folder (``YYYYMMDD/YYYYMMDDHHmmss.webp``) and
    unique. ``ocr_vector`` is float32 of ``ocr_model`` (the labels' text model), NULL for a capture
    without text. ``embedding``/``model_backend``/``model_id`` hold an image vector and its model
    where a vision backend made one (none does in this runtime: they stay empty).
    """
    db.execute(
        "CREATE TABLE screenshots ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " timestamp INTEGER NOT NULL,"
        " unix_ts INTEGER NOT NULL,"
        " filename TEXT NOT NULL UNIQUE,"
        " width INTEGER NOT NULL,"
        " height INTEGER NOT NULL,"
        " file_size INTEGER NOT NULL,"
        " image_size INTEGER NOT NULL,"
        " quality INTEGER NOT NULL,"
        " phash TEXT NOT NULL DEFAULT '',"
        " app_name TEXT NOT NULL DEFAULT '',"
        " window_title TEXT NOT NULL DEFAULT '',"
        " ocr_text TEXT NOT NULL DEFAULT '',"
        " ocr_model TEXT,"
        " ocr_vector BLOB,"
        " embedding BLOB,"
        " model_backend TEXT NOT NULL DEFAULT '',"
        " model_id TEXT NOT NULL DEFAULT '',"
        " gif_filename TEXT NOT NULL DEFAULT '',"
        " created_ms INTEGER NOT NULL)"
    )
    db.execute("CREATE INDEX screenshots_unix_ts ON screenshots (unix_ts)")
    db.execute("CREATE INDEX screenshots_ocr_model ON screenshots (ocr_model, id)")


MIGRATIONS: list[Migration] = [
    _conversations,
    _auth_tokens,
    _eeg,
    _embeddings_and_labels,
    _sleep_stagings,
    _caco_applet_state,
    _hook_log,
    _screenshots,
]


def migrate(db: sqlite_utils.Database) -> list[int]:
    """Apply every migration not yet applied; return the numbers applied now."""
    conn = db.conn
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (number INTEGER PRIMARY KEY, name TEXT, applied_at_ms INTEGER)"
    )
    applied_now: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = {row[0] for row in conn.execute("SELECT number FROM _migrations")}
        for number, migration in enumerate(MIGRATIONS, start=1):
            if number in done:
                continue
            migration(db)
            conn.execute(
                "INSERT INTO _migrations (number, name, applied_at_ms) VALUES (?, ?, ?)",
                (number, migration.__name__.lstrip("_"), int(time.time() * 1000)),
            )
            applied_now.append(number)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if applied_now:
        logger.info("applied migrations %s", applied_now)
    return applied_now
