"""A process pool for big encryption/decryption batches, without pickle and without fork.

The parameter server runs gRPC threads, after which ``fork`` is unsafe, and the project bans
pickle. So each pool worker is a fresh interpreter started with
``subprocess.Popen([sys.executable, "-m", "homolr.crypto._pool_worker"])`` that talks over
its stdin/stdout in length-prefixed binary frames (see :mod:`homolr.crypto._wire`)::

    parent -> worker   LOAD_PUBLIC  public-key bytes                 -> OK
                       LOAD_PRIVATE public-key bytes, p, q           -> OK
                       ENCRYPT      key id (32 B) + plaintexts       -> OK + ciphertexts
                       DECRYPT      key id (32 B) + ciphertexts      -> OK + plaintexts
    worker -> parent   OK payload | ERROR utf-8 message

Integers travel as fixed-width big-endian fields. Keys are sent once per worker and cached
there by key id (SHA-256 of the public-key bytes); the factors p and q only ever travel over
the pipe, never on a command line or in the environment. Workers start lazily (one per
usable core), are reused, are shut down by :func:`shutdown` or at interpreter exit, and exit
on their own when their stdin reaches end of file (i.e. when the parent dies).

Batches smaller than :data:`PARALLEL_THRESHOLD` stay in-process: starting a worker and
building its fixed-base table costs ~0.3 s, worth it only for hundreds of encryptions.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from gmpy2 import mpz

from homolr.crypto._wire import (
    concat_fields,
    ints_from_bytes,
    ints_to_bytes,
    read_frame,
    write_frame,
)
from homolr.errors import ConfigError, CryptoError

__all__ = [
    "OP_DECRYPT",
    "OP_ENCRYPT",
    "OP_ERROR",
    "OP_LOAD_PRIVATE",
    "OP_LOAD_PUBLIC",
    "OP_OK",
    "PARALLEL_THRESHOLD",
    "WORKERS_ENV",
    "decrypt",
    "encrypt",
    "set_worker_count",
    "should_parallelize",
    "shutdown",
    "worker_count",
    "worker_pids",
]

WORKERS_ENV = "HOMOLR_CRYPTO_WORKERS"
"""Environment variable overriding the pool size (see :func:`worker_count`)."""

PARALLEL_THRESHOLD: int = 256
"""Batches with at least this many elements go to the process pool (if it has >= 2 workers)."""

OP_LOAD_PUBLIC = 1
OP_LOAD_PRIVATE = 2
OP_ENCRYPT = 3
OP_DECRYPT = 4
OP_OK = 0x80
OP_ERROR = 0x81

_SHUTDOWN_GRACE_S = 2.0
_CHUNKS_PER_WORKER = 8  # small enough chunks for load balancing between busy cores
_MIN_CHUNK = 16  # ... but each chunk is still >= ~10 ms of work at 2048 bits
_configured_workers: int | None = None
_lock = threading.Lock()
_workers: list[_Worker] = []
_atexit_registered = False


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def worker_count() -> int:
    """Number of pool workers.

    :func:`set_worker_count` if called, else the environment variable
    ``HOMOLR_CRYPTO_WORKERS`` if set (``0`` turns the pool off, e.g. where a sandbox forbids
    spawning processes), else one per usable core.
    """
    if _configured_workers is not None:
        return _configured_workers
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if not configured:
        return _usable_cores()
    if not configured.isdigit():
        raise ConfigError(f"{WORKERS_ENV} must be a non-negative integer, got {configured!r}")
    return int(configured)


def set_worker_count(count: int | None) -> None:
    """Set the pool size (``None``: one per core; 0 or 1: never use the pool).

    Running workers are shut down so the next batch starts the new number.
    """
    global _configured_workers
    if count is not None and count < 0:
        raise ValueError(f"worker count must be >= 0 or None, got {count}")
    shutdown()
    _configured_workers = count


def should_parallelize(items: int) -> bool:
    """Whether a batch of ``items`` elements goes to the pool."""
    return items >= PARALLEL_THRESHOLD and worker_count() >= 2


class _Worker:
    """One pool process and the key ids it has loaded."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "homolr.crypto._pool_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self.loaded: set[tuple[int, bytes]] = set()

    @property
    def _stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def _stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    def send(self, opcode: int, payload: bytes) -> None:
        try:
            write_frame(self._stdin, opcode, payload)
        except (BrokenPipeError, OSError) as exc:
            raise CryptoError(f"pool worker pid {self.process.pid} is gone: {exc}") from exc

    def receive(self) -> bytes:
        try:
            frame = read_frame(self._stdout)
        except EOFError as exc:
            frame = None
            detail = str(exc)
        else:
            detail = "end of stream"
        if frame is None:
            code = self.process.poll()
            raise CryptoError(
                f"pool worker pid {self.process.pid} stopped answering ({detail}, exit code {code})"
            )
        opcode, payload = frame
        if opcode == OP_ERROR:
            raise CryptoError(f"pool worker failed: {payload.decode('utf-8', 'replace')}")
        if opcode != OP_OK:
            raise CryptoError(f"pool worker sent unknown opcode {opcode}")
        return payload

    def ensure_loaded(self, opcode: int, key_id: bytes, blob: bytes) -> None:
        if (opcode, key_id) in self.loaded:
            return
        self.send(opcode, blob)
        self.receive()
        self.loaded.add((opcode, key_id))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self.process.wait(timeout=_SHUTDOWN_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            self._stdout.close()


def _start_workers() -> list[_Worker]:
    global _atexit_registered
    if not _workers:
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
        _workers.extend(_Worker() for _ in range(max(worker_count(), 1)))
    return _workers


def _stop_workers() -> None:
    while _workers:
        _workers.pop().close()


def shutdown() -> None:
    """Stop every pool worker (idempotent; the pool restarts lazily on the next batch)."""
    with _lock:
        _stop_workers()


def worker_pids() -> list[int]:
    """Process ids of the running pool workers (for tests and diagnostics)."""
    with _lock:
        return [w.process.pid for w in _workers]


def _chunks(count: int, parts: int) -> list[tuple[int, int]]:
    size, extra = divmod(count, parts)
    bounds: list[tuple[int, int]] = []
    start = 0
    for index in range(parts):
        stop = start + size + (1 if index < extra else 0)
        if stop > start:
            bounds.append((start, stop))
        start = stop
    return bounds


class _Job:
    """One batch split into chunks that idle workers pull until none are left."""

    def __init__(
        self,
        load: tuple[int, bytes, bytes],
        opcode: int,
        key_id: bytes,
        items: Sequence[int],
        in_width: int,
        out_width: int,
        workers: int,
    ) -> None:
        self.load, self.opcode, self.key_id = load, opcode, key_id
        self.items, self.in_width, self.out_width = items, in_width, out_width
        parts = max(1, min(workers * _CHUNKS_PER_WORKER, len(items) // _MIN_CHUNK))
        self.pending = deque(enumerate(_chunks(len(items), parts)))
        self.results: list[list[mpz]] = [[] for _ in self.pending]
        self.errors: list[BaseException] = []

    def drive(self, worker: _Worker) -> None:
        """Feed ``worker`` chunks until the queue is empty (runs in its own thread)."""
        try:
            worker.ensure_loaded(*self.load)
            while not self.errors:
                try:
                    index, (start, stop) = self.pending.popleft()
                except IndexError:
                    return
                chunk = ints_to_bytes(self.items[start:stop], self.in_width)
                worker.send(self.opcode, self.key_id + chunk)
                self.results[index] = ints_from_bytes(worker.receive(), self.out_width)
        except BaseException as exc:
            self.errors.append(exc)


def _run(
    load: tuple[int, bytes, bytes],
    opcode: int,
    key_id: bytes,
    items: Sequence[int],
    in_width: int,
    out_width: int,
) -> list[mpz]:
    """Run ``opcode`` over ``items`` on the pool; results come back in input order.

    One thread per worker pulls chunks from a shared queue, so a worker slowed down by other
    load on its core simply takes fewer chunks.
    """
    with _lock:
        workers = _start_workers()
        job = _Job(load, opcode, key_id, items, in_width, out_width, len(workers))
        threads = [threading.Thread(target=job.drive, args=(w,), daemon=True) for w in workers]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except BaseException as exc:  # e.g. KeyboardInterrupt while waiting
            job.errors.append(exc)
        if job.errors:
            _stop_workers()  # a half-finished exchange leaves the pipes out of step
            raise job.errors[0]
    results = [value for chunk in job.results for value in chunk]
    if len(results) != len(items):
        raise CryptoError(f"pool returned {len(results)} results for {len(items)} inputs")
    return results


def encrypt(
    public_blob: bytes,
    key_id: bytes,
    plaintexts: Sequence[int],
    plain_width: int,
    cipher_width: int,
) -> list[mpz]:
    """Encrypt ``plaintexts`` (already range-checked) on the pool.

    Parameters
    ----------
    public_blob : bytes
        ``PublicKey.to_bytes()``.
    key_id : bytes
        32-byte SHA-256 of ``public_blob``.
    plaintexts : sequence of int, length n_values
        Integers in ``[0, n)``.
    plain_width, cipher_width : int
        Byte widths of a plaintext (of n) and of a ciphertext (of n**2).
    """
    load = (OP_LOAD_PUBLIC, key_id, public_blob)
    return _run(load, OP_ENCRYPT, key_id, plaintexts, plain_width, cipher_width)


def decrypt(
    public_blob: bytes,
    key_id: bytes,
    p: int,
    q: int,
    ciphertexts: Sequence[int],
    plain_width: int,
    cipher_width: int,
) -> list[mpz]:
    """Decrypt ``ciphertexts`` on the pool; ``p`` and ``q`` travel over the pipes only."""
    p_bytes = mpz(p).to_bytes((int(p).bit_length() + 7) // 8, "big")
    q_bytes = mpz(q).to_bytes((int(q).bit_length() + 7) // 8, "big")
    load = (OP_LOAD_PRIVATE, key_id, concat_fields([public_blob, p_bytes, q_bytes]))
    return _run(load, OP_DECRYPT, key_id, ciphertexts, cipher_width, plain_width)
