"""The fork-free, pickle-free process pool and its byte protocol."""

from __future__ import annotations

import io
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from homolr.crypto import EncryptedVector, encrypt_packed, parallel
from homolr.crypto._wire import (
    concat_fields,
    ints_from_bytes,
    ints_to_bytes,
    read_frame,
    split_fields,
    write_frame,
)
from homolr.errors import ConfigError, CryptoError
from tests.crypto.conftest import KeyPair

BATCH = parallel.PARALLEL_THRESHOLD


@pytest.fixture
def pool() -> Iterator[None]:
    """A two-worker pool, stopped and reset to the default size afterwards."""
    parallel.set_worker_count(2)
    yield
    parallel.set_worker_count(None)


# ---------------------------------------------------------------------------- wire helpers
def test_fixed_width_ints_round_trip() -> None:
    values = [0, 1, 255, 256, (1 << 64) - 1]
    data = ints_to_bytes(values, 8)
    assert len(data) == 40 and data[8:16] == (1).to_bytes(8, "big")
    assert ints_from_bytes(data, 8) == values
    with pytest.raises(ValueError, match="index 1"):
        ints_to_bytes([0, 1 << 64], 8)
    with pytest.raises(ValueError, match="index 0"):
        ints_to_bytes([-1], 8)
    with pytest.raises(ValueError, match="multiple"):
        ints_from_bytes(b"\x00" * 9, 8)
    with pytest.raises(ValueError, match="width"):
        ints_from_bytes(b"", 0)


def test_frames_and_fields() -> None:
    stream = io.BytesIO()
    write_frame(stream, 3, b"abc")
    write_frame(stream, 0x80, b"")
    stream.seek(0)
    assert read_frame(stream) == (3, b"abc")
    assert read_frame(stream) == (0x80, b"")
    assert read_frame(stream) is None  # clean end of stream
    with pytest.raises(EOFError, match="1 of 3"):
        read_frame(io.BytesIO(b"\x03\x00\x00\x00\x03a"))
    with pytest.raises(EOFError, match="header"):
        read_frame(io.BytesIO(b"\x03\x00"))
    fields = [b"", b"x", bytes(300)]
    assert split_fields(concat_fields(fields), 3) == fields
    with pytest.raises(ValueError, match="trailing"):
        split_fields(concat_fields(fields) + b"!", 3)
    with pytest.raises(ValueError, match="field 1"):
        split_fields(concat_fields(fields)[:6], 3)


def test_chunks_cover_the_batch_evenly() -> None:
    assert parallel._chunks(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert parallel._chunks(1, 4) == [(0, 1)]
    assert parallel._chunks(0, 2) == []


def test_threshold_and_worker_count(pool: None) -> None:
    assert parallel.worker_count() == 2
    assert not parallel.should_parallelize(BATCH - 1)
    assert parallel.should_parallelize(BATCH)
    parallel.set_worker_count(1)
    assert not parallel.should_parallelize(10 * BATCH)
    with pytest.raises(ValueError):
        parallel.set_worker_count(-1)


def test_environment_sets_the_pool_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(parallel.WORKERS_ENV, "0")
    assert parallel.worker_count() == 0
    assert not parallel.should_parallelize(10 * BATCH)
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    assert parallel.worker_count() == 3
    monkeypatch.setenv(parallel.WORKERS_ENV, "many")
    with pytest.raises(ConfigError, match=parallel.WORKERS_ENV):
        parallel.worker_count()
    monkeypatch.setenv(parallel.WORKERS_ENV, "")
    assert parallel.worker_count() >= 1


# ---------------------------------------------------------------------------- pool use
def test_big_batches_run_on_reused_workers(pool: None, keypair: KeyPair) -> None:
    pk, sk = keypair
    ms = [secrets.randbelow(int(pk.n)) for _ in range(BATCH + 7)]
    cs = pk.raw_encrypt_many(ms)
    pids = parallel.worker_pids()
    assert len(pids) == 2
    assert [sk.raw_decrypt(c) for c in cs] == ms  # decrypted here, encrypted there
    assert sk.raw_decrypt_many(cs) == ms  # decrypted on the pool
    values = [float(i) - 100.5 for i in range(BATCH)]
    ev = EncryptedVector.encrypt(pk, values)
    assert sk.decrypt_vector(ev).tolist() == values
    packed = encrypt_packed(pk, values * 7)  # 1,792 values -> 299 plaintexts
    assert sk.decrypt_packed(packed).tolist() == values * 7
    assert parallel.worker_pids() == pids  # started once, reused
    parallel.shutdown()
    assert parallel.worker_pids() == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()


def test_disabled_pool_stays_in_process(keypair: KeyPair) -> None:
    pk, sk = keypair
    parallel.set_worker_count(0)
    try:
        cs = pk.raw_encrypt_many([7] * BATCH)
        assert parallel.worker_pids() == []
        assert set(sk.raw_decrypt_many(cs)) == {7}
    finally:
        parallel.set_worker_count(None)


def test_precompute_masks_on_the_pool(pool: None, keypair: KeyPair) -> None:
    pk, sk = keypair
    pk.precompute_masks(BATCH)
    assert parallel.worker_pids()
    assert pk.precomputed_masks == BATCH
    cs = pk.raw_encrypt_many(list(range(BATCH)))
    assert pk.precomputed_masks == 0
    assert [sk.raw_decrypt(c) for c in cs] == list(range(BATCH))


def test_factors_never_reach_command_line_or_environment(pool: None, keypair: KeyPair) -> None:
    pk, sk = keypair
    sk.raw_decrypt_many(pk.raw_encrypt_many([1] * BATCH))
    for pid in parallel.worker_pids():
        exposed = (
            Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
        )
        for secret in (sk.p, sk.q):
            assert str(secret).encode() not in exposed
            assert format(secret, "x").encode() not in exposed


def test_a_dead_worker_fails_loudly_then_the_pool_restarts(pool: None, keypair: KeyPair) -> None:
    pk, sk = keypair
    pk.raw_encrypt_many([1] * BATCH)
    victim = parallel.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(CryptoError, match="pool worker"):
        pk.raw_encrypt_many([2] * BATCH)
    cs = pk.raw_encrypt_many([3] * BATCH)  # fresh workers
    assert victim not in parallel.worker_pids()
    assert {sk.raw_decrypt(c) for c in cs} == {3}


# ---------------------------------------------------------------------------- worker process
def _spawn_worker() -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(parallel.__file__).resolve().parents[2])
    return subprocess.Popen(
        [sys.executable, "-m", "homolr.crypto._pool_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )


def test_worker_exits_when_its_stdin_closes() -> None:
    worker = _spawn_worker()
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.close()
    assert worker.wait(timeout=30) == 0
    worker.stdout.close()


def test_worker_answers_errors_as_frames(keypair: KeyPair) -> None:
    pk, sk = keypair
    worker = _spawn_worker()
    assert worker.stdin is not None and worker.stdout is not None
    try:
        write_frame(worker.stdin, 99, b"")
        assert read_frame(worker.stdout) == (parallel.OP_ERROR, b"ValueError: unknown opcode 99")
        write_frame(worker.stdin, parallel.OP_ENCRYPT, pk.key_id() + bytes(pk.plaintext_bytes))
        opcode, message = read_frame(worker.stdout) or (0, b"")
        assert opcode == parallel.OP_ERROR and b"was not loaded" in message
        write_frame(worker.stdin, parallel.OP_LOAD_PUBLIC, pk.to_bytes())
        assert read_frame(worker.stdout) == (parallel.OP_OK, b"")
        too_big = int(pk.n).to_bytes(pk.plaintext_bytes, "big")
        write_frame(worker.stdin, parallel.OP_ENCRYPT, pk.key_id() + too_big)
        opcode, message = read_frame(worker.stdout) or (0, b"")
        assert opcode == parallel.OP_ERROR and b"[0, n)" in message
        plain = ints_to_bytes([5, 6], pk.plaintext_bytes)
        write_frame(worker.stdin, parallel.OP_ENCRYPT, pk.key_id() + plain)
        opcode, payload = read_frame(worker.stdout) or (0, b"")
        assert opcode == parallel.OP_OK
        assert [sk.raw_decrypt(c) for c in ints_from_bytes(payload, pk.ciphertext_bytes)] == [5, 6]
    finally:
        worker.stdin.close()
        worker.wait(timeout=30)
        worker.stdout.close()
