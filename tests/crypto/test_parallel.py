"""The fork-free, pickle-free process pool and its byte protocol."""

from __future__ import annotations

import io
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gmpy2
import pytest

from homolr.crypto import EncryptedVector, PrivateKey, encrypt_packed, parallel
from homolr.crypto._pool_worker import KeyCache, handle
from homolr.crypto._wire import (
    concat_fields,
    ints_from_bytes,
    ints_to_bytes,
    read_frame,
    split_fields,
    write_frame,
)
from homolr.errors import ConfigError, CryptoError, InvalidCiphertextError
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


def test_chunks_cover_the_batch() -> None:
    assert parallel._chunks(10, 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert parallel._chunks(1, 4) == [(0, 1)]
    assert parallel._chunks(0, 2) == []
    assert parallel.chunk_size(3704, 2) == 128  # long batches: short chunks, short tail
    assert parallel.chunk_size(1000, 4) == 32  # ~8 chunks per worker
    assert parallel.chunk_size(20, 2) == 16  # but never tiny


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


def test_a_worker_dying_mid_batch_fails_it_loudly_then_the_pool_restarts(
    pool: None, keypair: KeyPair
) -> None:
    pk, sk = keypair
    pk.raw_encrypt_many([1] * BATCH)
    victim = parallel.worker_pids()[0]
    os.kill(victim, signal.SIGSTOP)  # it takes chunks but never answers
    try:
        future = parallel.submit_encrypt(
            pk.to_bytes(), pk.key_id(), [2] * (8 * BATCH), pk.plaintext_bytes, pk.ciphertext_bytes
        )
        time.sleep(0.2)
        assert not future.done()
    finally:
        os.kill(victim, signal.SIGKILL)
    with pytest.raises(CryptoError, match=f"pool worker pid {victim}"):
        future.result(timeout=30)
    cs = pk.raw_encrypt_many([3] * BATCH)  # fresh workers
    assert victim not in parallel.worker_pids()
    assert {sk.raw_decrypt(c) for c in cs} == {3}


def test_an_idle_worker_dying_is_replaced_without_failing_anything(
    pool: None, keypair: KeyPair
) -> None:
    pk, sk = keypair
    pk.raw_encrypt_many([1] * BATCH)
    pids = parallel.worker_pids()
    os.kill(pids[1], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while parallel.worker_pids() == pids and time.monotonic() < deadline:
        time.sleep(0.01)  # the pool notices at once (end of stream) and is dropped
    assert parallel.worker_pids() == []
    assert sk.raw_decrypt_many(pk.raw_encrypt_many([4] * BATCH)) == [4] * BATCH
    assert not set(parallel.worker_pids()) & set(pids)


def test_an_error_answer_fails_only_its_batch(pool: None, keypair: KeyPair) -> None:
    pk, sk = keypair
    pk.raw_encrypt_many([1] * BATCH)
    pids = parallel.worker_pids()
    bad = [5] * (BATCH - 1) + [int(pk.n)]  # bypasses the parent's range check
    future = parallel.submit_encrypt(
        pk.to_bytes(), pk.key_id(), bad, pk.plaintext_bytes, pk.ciphertext_bytes
    )
    with pytest.raises(CryptoError, match=r"\[0, n\)"):
        future.result(timeout=30)
    too_wide = [5] * (BATCH - 1) + [1 << (8 * pk.plaintext_bytes)]  # does not fit its field
    future = parallel.submit_encrypt(
        pk.to_bytes(), pk.key_id(), too_wide, pk.plaintext_bytes, pk.ciphertext_bytes
    )
    with pytest.raises(CryptoError, match="cannot send chunk"):
        future.result(timeout=30)
    assert sk.raw_decrypt_many(pk.raw_encrypt_many([6] * BATCH)) == [6] * BATCH
    assert parallel.worker_pids() == pids  # same workers: the framing stayed in step


def test_batches_from_many_threads_share_the_pool(pool: None, keypair: KeyPair) -> None:
    pk, sk = keypair
    batches = [[secrets.randbelow(int(pk.n)) for _ in range(40 + 37 * k)] for k in range(8)]
    cts = [pk.encrypt_in_process(batch) for batch in batches]
    with ThreadPoolExecutor(4) as threads:
        futures = [sk.decrypt_async(cs) for cs in cts]  # all queued before any is done
        in_threads = list(threads.map(sk.raw_decrypt_many, cts))
    assert [f.result(timeout=60) for f in futures] == batches
    assert in_threads == batches
    assert len(parallel.worker_pids()) == 2


def test_decrypt_async_checks_ranges_before_returning(pool: None, keypair: KeyPair) -> None:
    pk, sk = keypair
    with pytest.raises(InvalidCiphertextError, match="index 1"):
        sk.decrypt_async([pk.raw_encrypt(1), pk.nsquare])
    assert sk.decrypt_async([]).result(timeout=5) == []


def test_decrypt_async_without_a_pool_runs_in_the_calling_thread(keypair: KeyPair) -> None:
    pk, sk = keypair
    parallel.set_worker_count(0)
    try:
        cs = pk.raw_encrypt_many([7, 8, 9])
        future = sk.decrypt_async(cs)
        assert future.done() and future.result() == [7, 8, 9]
        assert parallel.worker_pids() == []
    finally:
        parallel.set_worker_count(None)


def test_shutdown_fails_unfinished_batches(pool: None, keypair: KeyPair) -> None:
    pk, sk = keypair
    cs = pk.raw_encrypt_many(list(range(BATCH)))
    stalled = parallel.worker_pids()[0]
    os.kill(stalled, signal.SIGSTOP)  # holds its chunks until after the shutdown began
    future = sk.decrypt_async(cs * 4)
    time.sleep(0.2)
    resume = threading.Timer(0.5, os.kill, (stalled, signal.SIGCONT))
    resume.start()
    try:
        parallel.shutdown()
    finally:
        resume.join()
    with pytest.raises(CryptoError, match="shut down"):
        future.result(timeout=5)
    assert parallel.worker_pids() == []
    assert sk.raw_decrypt_many(cs) == list(range(BATCH))  # a fresh pool


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


def test_constant_time_mode_reaches_the_workers(
    pool: None, keypair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    pk, sk = keypair
    ms = list(range(BATCH))
    cs = pk.raw_encrypt_many(ms)
    ct = PrivateKey(pk, sk.p, sk.q, constant_time=True)
    assert ct.raw_decrypt_many(cs) == sk.raw_decrypt_many(cs) == ms  # both on the pool
    # in a worker's request handler, mode byte 1 selects powmod_sec and 0 does not
    cache = KeyCache()
    cache.load_private(
        concat_fields([pk.to_bytes(), int(sk.p).to_bytes(32, "big"), int(sk.q).to_bytes(32, "big")])
    )
    calls: list[int] = []
    real = gmpy2.powmod_sec
    monkeypatch.setattr(gmpy2, "powmod_sec", lambda *a: calls.append(1) or real(*a))
    body = ints_to_bytes(cs[:3], pk.ciphertext_bytes)
    for mode, expected_calls in ((parallel.MODE_FAST, 0), (parallel.MODE_CONSTANT_TIME, 6)):
        calls.clear()
        answer = handle(cache, parallel.OP_DECRYPT, pk.key_id() + bytes([mode]) + body)
        assert ints_from_bytes(answer, pk.plaintext_bytes) == ms[:3]
        assert len(calls) == expected_calls
    with pytest.raises(ValueError, match="mode byte"):
        handle(cache, parallel.OP_DECRYPT, pk.key_id() + b"\x07" + body)
