"""The member's replay guard: never a second contribution for a round, whatever the PS replays."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from homolr.errors import DataError, RollbackError
from homolr.protocol.messages import Update, UpdateHeader
from homolr.worker.replay import ReplayGuard

FED = bytes(range(32))
OTHER_FED = bytes(range(1, 33))
KEY = "key-fingerprint-1"
OTHER_KEY = "key-fingerprint-2"
_RUNS = {"a": (FED, KEY), "b": (FED, OTHER_KEY), "c": (OTHER_FED, KEY), "d": (b"", KEY)}


def _update(round_: int, payload: bytes | None = None) -> Update:
    header = UpdateHeader("guest", "run-1", round_, 31, 48, 64, 10, 2)
    return Update(header, payload if payload is not None else bytes([round_ % 256]) * 64)


def _guard(directory: Path, federation: bytes = FED, key: str = KEY) -> ReplayGuard:
    return ReplayGuard(directory, "guest", federation, key)


def _payload_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("member-guest.*.bin"))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_a_fresh_round_may_be_contributed(state: Path) -> None:
    guard = _guard(state)
    assert guard.mark == -1
    assert guard.before_round(0) is None
    guard.record(_update(0))
    assert guard.mark == 0
    assert guard.before_round(1) is None and guard.before_round(9) is None


def test_the_round_of_the_mark_gets_the_byte_identical_stored_upload(state: Path) -> None:
    guard = _guard(state)
    update = _update(4, os.urandom(300))
    guard.record(update)
    stored = guard.before_round(4)
    assert stored == update
    assert stored is not None and stored.payload == update.payload


@pytest.mark.parametrize("old", [0, 3])
def test_a_round_below_the_mark_is_a_rollback(state: Path, old: int) -> None:
    guard = _guard(state)
    guard.record(_update(4))
    with pytest.raises(RollbackError) as err:
        guard.before_round(old)
    message = str(err.value)
    assert f"round {old}" in message and "submitted round 4" in message
    assert "'guest'" in message and str(guard.path) in message


def test_the_mark_without_its_payload_file_is_a_rollback(state: Path) -> None:
    guard = _guard(state)
    guard.record(_update(4))
    [payload] = _payload_files(state)
    payload.unlink()
    with pytest.raises(RollbackError, match="Nothing new was sent"):
        guard.before_round(4)


@pytest.mark.parametrize("change", ["flip", "truncate", "extend", "replace"])
def test_the_mark_with_an_altered_payload_is_a_rollback(state: Path, change: str) -> None:
    guard = _guard(state)
    update = _update(4)
    guard.record(update)
    [payload] = _payload_files(state)
    data = bytearray(payload.read_bytes())
    if change == "flip":
        data[10] ^= 1
    elif change == "truncate":
        del data[-1]
    elif change == "extend":
        data += b"\x00"
    else:
        data = bytearray(_update(5).payload)  # another valid-looking upload
    payload.write_bytes(bytes(data))
    with pytest.raises(RollbackError):
        guard.before_round(4)
    with pytest.raises(RollbackError):
        _guard(state).before_round(4)  # after a restart too


@pytest.mark.parametrize("again", [4, 2, 0])
def test_record_refuses_a_round_at_or_below_the_mark(state: Path, again: int) -> None:
    guard = _guard(state)
    original = _update(4)
    guard.record(original)
    before = guard.path.read_bytes(), [p.read_bytes() for p in _payload_files(state)]
    with pytest.raises(RollbackError, match=f"refuses a second contribution for round {again}"):
        guard.record(_update(again, b"a different contribution"))
    assert (guard.path.read_bytes(), [p.read_bytes() for p in _payload_files(state)]) == before
    assert guard.mark == 4 and guard.before_round(4) == original


def test_the_state_survives_a_restart(state: Path) -> None:
    first = _guard(state)
    update = _update(7, os.urandom(128))
    first.record(update)
    restarted = _guard(state)
    assert restarted.mark == 7
    assert restarted.before_round(7) == update
    with pytest.raises(RollbackError):
        restarted.before_round(6)
    with pytest.raises(RollbackError):
        restarted.record(_update(7))
    restarted.record(_update(8))
    assert _guard(state).mark == 8


def test_separate_federations_and_keys_are_independent(state: Path) -> None:
    # One run after the other (b: the same federation with a new PS key, i.e. a new run; c: another
    # federation; d: open membership); each guard is made when the previous run has ended.
    for name, run, round_ in (("a", _RUNS["a"], 5), ("b", _RUNS["b"], 1), ("c", _RUNS["c"], 9)):
        guard = _guard(state, *run)
        assert guard.mark == -1 and guard.before_round(0) is None
        guard.record(_update(round_, name.upper().encode() * 64))
    d = _guard(state, *_RUNS["d"])
    assert d.mark == -1
    d.record(_update(2, b"D" * 64))
    assert len(_payload_files(state)) == 4
    marks = {name: _guard(state, *run).mark for name, run in _RUNS.items()}
    assert marks == {"a": 5, "b": 1, "c": 9, "d": 2}
    for name, run in _RUNS.items():
        stored = _guard(state, *run).before_round(marks[name])
        assert stored is not None and stored.payload == name.upper().encode() * 64


def test_interleaved_guards_of_one_member_keep_each_others_marks(state: Path) -> None:
    a = _guard(state, FED, KEY)
    b = _guard(state, OTHER_FED, KEY)
    a.record(_update(5))
    b.record(_update(1))
    assert _guard(state, FED, KEY).mark == 5


# --- the files ---------------------------------------------------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_files_are_private_even_under_an_open_umask(state: Path, open_umask: None) -> None:
    guard = _guard(state)
    guard.record(_update(0))
    guard.record(_update(1))
    files = [guard.path, *_payload_files(state)]
    assert len(files) == 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in state.iterdir()) == sorted(p.name for p in files)  # no temp files


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "not valid JSON"),
        ('{"format": "homolr-member-state", "version": 1, "runs": {', "line 1"),
        ("[]", "not a homolr-member-state v1 file"),
        ('{"format": "other", "version": 1, "runs": {}}', "not a homolr-member-state v1 file"),
        ('{"format": "homolr-member-state", "version": 2, "runs": {}}', "v1"),
        ('{"format": "homolr-member-state", "version": 1, "runs": []}', "v1"),
        ('{"format": "homolr-member-state", "version": 1}', "v1"),
    ],
)
def test_a_corrupt_state_file_is_a_data_error_naming_the_file(
    state: Path, text: str, says: str
) -> None:
    state.mkdir()
    path = state / "member-guest.state.json"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        _guard(state)
    assert str(path) in str(err.value) and says in str(err.value)
    assert path.read_text() == text  # never silently reset


def test_a_state_file_that_is_not_utf8_is_a_data_error_naming_the_file(state: Path) -> None:
    state.mkdir()
    path = state / "member-guest.state.json"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(DataError) as err:
        _guard(state)
    assert str(path) in str(err.value) and "cannot read the member state" in str(err.value)
    assert path.read_bytes() == b"\xff\xfe{}"


@pytest.mark.parametrize(
    "damage", ["round-not-a-number", "round-missing", "bad-header", "not-an-object"]
)
def test_a_damaged_entry_is_a_data_error_naming_the_file(state: Path, damage: str) -> None:
    guard = _guard(state)
    guard.record(_update(3))
    document = json.loads(guard.path.read_text())
    [run_key] = document["runs"]
    entry = document["runs"][run_key]  # the payload file and its hash stay valid
    damaged: object = {
        "round-not-a-number": {**entry, "round": "seven"},
        "round-missing": {k: v for k, v in entry.items() if k != "round"},
        "bad-header": {**entry, "header": {"nope": 1}},
        "not-an-object": "not an object",
    }[damage]
    document["runs"][run_key] = damaged
    guard.path.write_text(json.dumps(document))
    with pytest.raises(DataError, match=str(guard.path)):
        reloaded = _guard(state)
        reloaded.before_round(reloaded.mark)
