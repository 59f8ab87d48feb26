"""The pieces of sleep staging that need no sidecar: channel choice, the sleep store, the fast reader."""

from __future__ import annotations

import numpy as np
import pytest
from brainflow.data_filter import DataFilter

from miso_runtime.neuro.recording_columns import read_rows
from miso_runtime.sleep.channels import ChannelNotFound, pick_channel
from miso_runtime.store.database import open_database
from miso_runtime.store.eeg import NewSession, SessionRepository
from miso_runtime.store.sleep import SleepRepository, StagedNight, StagingKey
from tests.eeg import write_recording

MUSE_S = 39


@pytest.mark.parametrize(
    ("names", "chosen", "why"),
    [
        (["F4-A1", "CZ-A2"], "CZ-A2", "auto: central (CZ)"),  # the test recording: its central lead
        (["TP9", "AF7", "AF8", "TP10"], "TP10", "auto: temporo-parietal (TP10)"),  # Muse
        (["Fp1", "Fp2", "O1"], "Fp2", "auto: frontal (FP2)"),
        (["O1", "x"], "O1", "auto: occipital (O1)"),
        (["ch1", "ch2"], "ch1", "auto: first channel (no 10-20 name recognised)"),
        (["c3-m2", "C4-M1"], "C4-M1", "auto: central (C4)"),  # C4 before C3, whatever the order
    ],
)
def test_auto_picks_the_nearest_substitute_of_a_central_lead(names, chosen, why):
    assert pick_channel(names) == (chosen, why)


def test_a_configured_channel_wins_and_a_missing_one_is_refused_with_the_choices():
    assert pick_channel(["TP9", "AF7", "AF8", "TP10"], "af7") == ("AF7", "configured")
    with pytest.raises(ChannelNotFound, match="TP9, AF7, AF8, TP10"):
        pick_channel(["TP9", "AF7", "AF8", "TP10"], "Cz")
    with pytest.raises(ValueError):
        pick_channel([])


def night(n: int) -> StagedNight:
    return StagedNight(
        start_utc_ms=np.arange(n, dtype=np.int64) * 30_000 + 1_000,
        stage=np.array([0, 1, 2, 3, 5][:n] * (n // 5 + 1), dtype=np.int8)[:n],
        confidence=np.linspace(0.5, 1.0, n),
        probabilities=np.full((n, 5), 0.2),
        relative=np.full((n, 4), 0.25),
    )


def test_a_staging_replaces_its_key_and_goes_with_its_session(tmp_path):
    db = open_database(tmp_path / "miso.db")
    SessionRepository(db).insert(NewSession("s1", None, MUSE_S, MUSE_S, "MUSE_S_BOARD", 1_000, "r.csv"))
    repository = SleepRepository(db)
    key = StagingKey("s1", "yasa", "yasa-0.8.1", "auto")
    first = repository.save(key, status="staged", n_samples=10, epoch_s=30.0, night=night(4), channel="TP10")
    second = repository.save(key, status="staged", n_samples=12, epoch_s=30.0, night=night(6), channel="TP10")
    other = repository.save(StagingKey("s1", "yasa", "yasa-0.8.1", "TP9"), status="failed", n_samples=12, epoch_s=30)
    assert second > first and repository.find(key).n_samples == 12 and repository.find(key).n_epochs == 6
    assert repository.count() == 2 and repository.find(StagingKey("s1", "yasa", "yasa-0.8.1", "TP9")).id == other
    epochs = repository.epochs_in_range([repository.find(key)], 31_000, 91_000)
    assert [e.start_utc_ms for e in epochs] == [31_000, 61_000, 91_000] and epochs[0].stage == 1
    SessionRepository(db).delete("s1")
    assert repository.count() == 0 and db.execute("SELECT COUNT(*) FROM sleep_epochs").fetchone()[0] == 0


def test_the_fast_reader_reads_what_brainflow_reads_and_drops_a_torn_line(tmp_path):
    eeg = np.random.default_rng(3).normal(0, 40, size=(4, 3000))
    path = write_recording(tmp_path / "r.csv", MUSE_S, eeg, start_s=1_795_000_000.0)
    expected = DataFilter.read_file(str(path))
    progress: list[float] = []
    rows = read_rows(path, MUSE_S, [4, 6, 1], progress=progress.append)
    assert np.array_equal(rows, expected[[4, 6, 1]]) and progress[-1] == 1.0
    with path.open("ab") as handle:
        handle.write(b"12.5\t-3")  # a crash in the middle of a line
    assert np.array_equal(read_rows(path, MUSE_S, [1, 6]), expected[[1, 6]])
    with pytest.raises(ValueError, match="fields per line"):
        read_rows(path, 1, [1])  # the Ganglion's layout has 15 rows, not Muse S's 8


def test_the_recording_writer_keeps_an_exact_binary_copy_and_resumes_it(tmp_path):
    from miso_runtime.neuro.recording import RecordingWriter
    from miso_runtime.neuro.sample_file import read_channel, samples_path
    from tests.eeg import board_data

    eeg = np.random.default_rng(5).normal(0, 40, size=(4, 1000))
    data = board_data(MUSE_S, eeg, 1_795_000_000.0)
    path = tmp_path / "r.csv"
    with RecordingWriter(path, MUSE_S) as writer:
        writer.append(data[:, :600])
    with RecordingWriter(path, MUSE_S) as writer:  # a resumed recording continues its copy
        writer.append(data[:, 600:])
    timestamps, channel = read_channel(path, 4, 3, 1000)
    assert np.array_equal(channel, eeg[3]) and np.array_equal(timestamps, data[6])  # the board's own doubles
    assert read_channel(path, 4, 3, 999) is None  # not the session's sample count: the text stands in

    with samples_path(path).open("ab") as handle:
        handle.write(b"\x01" * 13)  # a record torn by a crash
    with RecordingWriter(path, MUSE_S):
        pass
    assert read_channel(path, 4, 0, 1000)[1].tolist() == eeg[0].tolist()

    with path.open("ab") as handle:  # the text got samples the copy did not: the copy goes
        DataFilter.write_file(np.ascontiguousarray(data[:, :5]), str(path), "a")
    with RecordingWriter(path, MUSE_S):
        pass
    assert not samples_path(path).exists() and read_channel(path, 4, 0, 1005) is None


def test_a_session_deleted_while_it_is_staged_ends_its_job_without_taking_the_worker_down(tmp_path):
    from workers.protocol.staging import SessionStaged, StageSession
    from workers.staging_worker import _stage

    db = open_database(tmp_path / "miso.db")
    sent: list = []
    command = StageSession("j1", "gone", str(tmp_path / "gone.csv"), MUSE_S, ("TP9",), "auto", "yasa-0.8.1", 10, 1.0)
    _stage(command, SleepRepository(db), sent.append)  # no such session row any more: the store refuses the result
    [outcome] = [event for event in sent if isinstance(event, SessionStaged)]
    assert (outcome.status, outcome.code, outcome.staging_id) == ("failed", "session_deleted", 0)
    assert SleepRepository(db).count() == 0
