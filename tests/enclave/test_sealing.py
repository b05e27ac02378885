"""Sealed store: atomic JSON checkpoints and the Paillier private key document."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from homolr.crypto import PrivateKey, generate_keypair
from homolr.enclave.sealing import (
    SealedStore,
    private_key_from_document,
    private_key_to_document,
)
from homolr.errors import ConfigError, DataError

CHECKPOINT = {"round": 3, "model": [0.5, -1.25], "plan": {"rounds": 10}, "workers": ["w1"]}


@pytest.fixture(scope="module")
def private_key() -> PrivateKey:
    return generate_keypair(512, insecure_small_key=True)[1]


def _leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.endswith(".tmp"))


def test_save_then_load(tmp_path: Path) -> None:
    store = SealedStore(tmp_path / "sealed")
    path = store.save("checkpoint", CHECKPOINT)
    assert path == tmp_path / "sealed" / "checkpoint.json"
    assert store.load("checkpoint") == CHECKPOINT
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _leftovers(store.directory) == []


def test_missing_document_is_none(tmp_path: Path) -> None:
    assert SealedStore(tmp_path).load("checkpoint") is None


def test_save_replaces_and_delete_removes(tmp_path: Path) -> None:
    store = SealedStore(tmp_path)
    store.save("checkpoint", CHECKPOINT)
    store.save("checkpoint", {"round": 4})
    assert store.load("checkpoint") == {"round": 4}
    assert store.delete("checkpoint") is True
    assert store.delete("checkpoint") is False
    assert store.load("checkpoint") is None


def test_crash_before_rename_keeps_the_old_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SealedStore(tmp_path)
    store.save("checkpoint", CHECKPOINT)

    def crash(source: Any, target: Any) -> None:
        raise OSError("simulated power loss")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated power loss"):
        store.save("checkpoint", {"round": 99})
    monkeypatch.undo()
    assert store.load("checkpoint") == CHECKPOINT
    assert _leftovers(tmp_path) == []


def test_data_is_fsynced_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(source: Any, target: Any) -> None:
        events.append("replace")
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    SealedStore(tmp_path).save("checkpoint", CHECKPOINT)
    assert events == ["fsync-file", "replace", "fsync-dir"]


def test_corrupt_json_names_file_and_line(tmp_path: Path) -> None:
    store = SealedStore(tmp_path)
    store.path_for("checkpoint").write_text('{\n "round": 3,\n "model": [1, 2\n}\n')
    with pytest.raises(DataError) as info:
        store.load("checkpoint")
    assert str(store.path_for("checkpoint")) in str(info.value)
    assert "line 4" in str(info.value)


def test_non_object_document_is_refused(tmp_path: Path) -> None:
    store = SealedStore(tmp_path)
    store.path_for("checkpoint").write_text("[1, 2, 3]")
    with pytest.raises(DataError, match="expected a JSON object"):
        store.load("checkpoint")


@pytest.mark.parametrize("document", [{"x": float("nan")}, {"x": b"bytes"}, {"x": {1, 2}}])
def test_unserialisable_documents_are_refused_without_writing(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    store = SealedStore(tmp_path)
    with pytest.raises(DataError, match="not JSON-serialisable"):
        store.save("checkpoint", document)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["", "../escape", ".hidden", "a/b", "state.tmp", "x" * 200])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="sealed document name"):
        SealedStore(tmp_path).save(name, CHECKPOINT)


def test_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="sealed directory"):
        SealedStore(tmp_path / "file")


# --- private key document ------------------------------------------------------------------


def test_private_key_round_trip_through_the_store(tmp_path: Path, private_key: PrivateKey) -> None:
    store = SealedStore(tmp_path)
    store.save("checkpoint", {"private_key": private_key_to_document(private_key), **CHECKPOINT})
    loaded = store.load("checkpoint")
    assert loaded is not None
    restored = private_key_from_document(loaded["private_key"])
    assert (int(restored.p), int(restored.q)) == (int(private_key.p), int(private_key.q))
    assert int(restored.public_key.n) == int(private_key.public_key.n)
    assert int(restored.public_key.hs) == int(private_key.public_key.hs)
    assert restored.public_key.to_bytes() == private_key.public_key.to_bytes()


def test_document_holds_hex_integers(private_key: PrivateKey) -> None:
    document = private_key_to_document(private_key)
    json.dumps(document)  # plain JSON
    assert int(document["p"], 16) * int(document["q"], 16) == int(document["n"], 16)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"p": "3"}, r"p \* q != n"),
        ({"q": None}, "field 'q' must be a non-empty hex string"),
        ({"n": "xyz"}, "field 'n' is not hex"),
        ({"hs": "1"}, "field 'hs' must be > 1"),
        ({"format": "something-else"}, "field 'format'"),
        ({"version": 2}, "field 'version'"),
    ],
)
def test_tampered_private_key_documents(
    private_key: PrivateKey, change: dict[str, object], message: str
) -> None:
    document = {**private_key_to_document(private_key), **change}
    with pytest.raises(DataError, match=message):
        private_key_from_document(document)


def test_non_object_private_key_document() -> None:
    with pytest.raises(DataError, match="expected an object"):
        private_key_from_document([])  # type: ignore[arg-type]
