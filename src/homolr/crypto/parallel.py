"""A process pool for big encryption/decryption batches, without pickle and without fork.

The parameter server runs gRPC threads, after which ``fork`` is unsafe, and the project bans
pickle. So each pool worker is a fresh interpreter started with
``subprocess.Popen([sys.executable, "-m", "homolr.crypto._pool_worker"])`` that talks over
its stdin/stdout in length-prefixed binary frames (see :mod:`homolr.crypto._wire`)::

    parent -> worker   LOAD_PUBLIC  public-key bytes                         -> OK
                       LOAD_PRIVATE public-key bytes, p, q                   -> OK
                       ENCRYPT      key id (32 B) + plaintexts               -> OK + ciphertexts
                       DECRYPT      key id (32 B) + mode (1 B) + ciphertexts -> OK + plaintexts
    worker -> parent   OK payload | ERROR utf-8 message

Integers travel as fixed-width big-endian fields; the DECRYPT mode byte is 1 for
constant-time exponentiation (``gmpy2.powmod_sec``), else 0. Keys are sent once per worker
and cached there by key id (SHA-256 of the public-key bytes); the factors p and q only ever
travel over the pipe, never on a command line or in the environment. Workers start lazily
(one per usable core, ``os.sched_getaffinity``), are reused, are shut down by
:func:`shutdown` or at interpreter exit, and exit on their own when their stdin reaches end
of file (i.e. when the parent dies).

**Scheduling.** A batch is cut into chunks (:func:`chunk_size`) that go into one queue
shared by every caller, so batches submitted from several threads (e.g. the chunks of an
update decrypted while later chunks are still arriving) interleave and keep every worker
busy. Each worker has a sender thread, which keeps up to :data:`IN_FLIGHT` chunks queued
in the worker's pipe so it never waits for the parent between chunks, and a receiver
thread, which reads the answers; separate threads mean a large answer can never deadlock
against a large request. :func:`submit_encrypt` / :func:`submit_decrypt` return a
:class:`concurrent.futures.Future`; :func:`encrypt` waits for it.

**Failures.** An ERROR answer fails that batch only. A worker that dies or breaks the
framing fails every unfinished batch with :class:`~homolr.errors.CryptoError` and stops the
pool, which restarts with fresh workers on the next batch.

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
from concurrent.futures import Future
from dataclasses import dataclass
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
    "IN_FLIGHT",
    "MODE_CONSTANT_TIME",
    "MODE_FAST",
    "OP_DECRYPT",
    "OP_ENCRYPT",
    "OP_ERROR",
    "OP_LOAD_PRIVATE",
    "OP_LOAD_PUBLIC",
    "OP_OK",
    "PARALLEL_THRESHOLD",
    "WORKERS_ENV",
    "chunk_size",
    "encrypt",
    "pool_enabled",
    "set_worker_count",
    "should_parallelize",
    "shutdown",
    "submit_decrypt",
    "submit_encrypt",
    "worker_count",
    "worker_pids",
]

WORKERS_ENV = "HOMOLR_CRYPTO_WORKERS"
"""Environment variable overriding the pool size (see :func:`worker_count`)."""

PARALLEL_THRESHOLD: int = 256
"""Batches with at least this many elements go to the process pool (if it has >= 2 workers)."""

IN_FLIGHT = 2
"""Chunks queued at one worker at a time: it starts the next while the parent reads one."""

OP_LOAD_PUBLIC = 1
OP_LOAD_PRIVATE = 2
OP_ENCRYPT = 3
OP_DECRYPT = 4
OP_OK = 0x80
OP_ERROR = 0x81

MODE_FAST = 0
MODE_CONSTANT_TIME = 1

_SHUTDOWN_GRACE_S = 2.0
_CHUNKS_PER_WORKER = 8  # enough chunks for load balancing between busy cores ...
_MIN_CHUNK = 16  # ... each still >= ~10 ms of work at 2048 bits ...
_MAX_CHUNK = 128  # ... and short enough (<= ~0.7 s of decryption) to keep the tail short
_configured_workers: int | None = None
_lock = threading.Lock()  # guards _pool and _configured_workers
_pool: _Pool | None = None
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
    spawning processes), else one per usable core (``os.sched_getaffinity``).
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
    with _lock:
        _configured_workers = count


def pool_enabled() -> bool:
    """Whether batches may run on the pool at all (at least two workers configured)."""
    return worker_count() >= 2


def should_parallelize(items: int) -> bool:
    """Whether a batch of ``items`` elements goes to the pool."""
    return items >= PARALLEL_THRESHOLD and pool_enabled()


def chunk_size(items: int, workers: int) -> int:
    """Elements per chunk for a batch of ``items`` on ``workers`` workers.

    About :data:`_CHUNKS_PER_WORKER` chunks per worker, clamped to
    [``_MIN_CHUNK``, ``_MAX_CHUNK``] elements.
    """
    target = -(-items // max(1, workers * _CHUNKS_PER_WORKER))
    return max(_MIN_CHUNK, min(_MAX_CHUNK, target))


def _chunks(count: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, count)) for start in range(0, count, size)]


# ---------------------------------------------------------------------------- jobs
class _Job:
    """One submitted batch: its chunks' results and the future the caller waits on."""

    def __init__(
        self,
        load: tuple[int, bytes, bytes],
        prefix: bytes,
        opcode: int,
        items: Sequence[int],
        in_width: int,
        out_width: int,
        parts: int,
    ) -> None:
        self.load, self.prefix, self.opcode = load, prefix, opcode
        self.items, self.in_width, self.out_width = items, in_width, out_width
        self.results: list[list[mpz] | None] = [None] * parts
        self.remaining = parts
        self.future: Future[list[mpz]] = Future()
        self.future.set_running_or_notify_cancel()

    @property
    def done(self) -> bool:
        return self.future.done()

    def payload(self, start: int, stop: int) -> bytes:
        return self.prefix + ints_to_bytes(self.items[start:stop], self.in_width)

    def deliver(self, index: int, data: bytes, expected: int) -> None:
        """Store one chunk's answer; resolve the future when it was the last."""
        if self.done:
            return
        try:
            values = ints_from_bytes(data, self.out_width)
        except ValueError as exc:
            self.fail(CryptoError(f"pool answer for chunk {index} is malformed: {exc}"))
            return
        if len(values) != expected:
            self.fail(CryptoError(f"pool returned {len(values)} results for {expected} inputs"))
            return
        self.results[index] = values
        self.remaining -= 1
        if self.remaining == 0:
            self.future.set_result([v for chunk in self.results if chunk for v in chunk])

    def fail(self, exc: BaseException) -> None:
        if not self.done:
            self.future.set_exception(exc)


@dataclass
class _Task:
    """One chunk of a job (or, with ``job`` None, a key load sent ahead of one)."""

    job: _Job | None
    index: int = 0
    start: int = 0
    stop: int = 0


# ---------------------------------------------------------------------------- workers
class _Worker:
    """One pool process, its key loads and the chunks queued at it."""

    def __init__(self, pool: _Pool) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        self.pool = pool
        self.process = subprocess.Popen(
            [sys.executable, "-m", "homolr.crypto._pool_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self.loaded: set[tuple[int, bytes]] = set()
        self.in_flight: deque[_Task] = deque()
        self.threads = [
            threading.Thread(target=self._send_loop, name=f"homolr-pool-send-{self.pid}"),
            threading.Thread(target=self._receive_loop, name=f"homolr-pool-recv-{self.pid}"),
        ]
        for thread in self.threads:
            thread.daemon = True
            thread.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def _stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def _stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    def _send_loop(self) -> None:
        pool = self.pool
        while True:
            with pool.cond:
                task = pool.next_task(self)
            if task is None or task.job is None:
                return
            job = task.job
            try:
                payload = job.payload(task.start, task.stop)
            except ValueError as exc:  # a value does not fit its field: this batch's fault
                job.fail(CryptoError(f"cannot send chunk {task.index} to the pool: {exc}"))
                continue
            load_opcode, key_id, blob = job.load
            with pool.cond:
                load = (load_opcode, key_id) not in self.loaded
                if load:
                    self.loaded.add((load_opcode, key_id))
                    self.in_flight.append(_Task(None))
                self.in_flight.append(task)
            try:
                if load:
                    write_frame(self._stdin, load_opcode, blob)
                write_frame(self._stdin, job.opcode, payload)
            except (OSError, ValueError) as exc:  # broken pipe, or stdin closed by shutdown
                pool.broken(CryptoError(f"pool worker pid {self.pid} is gone: {exc}"))
                return

    def _receive_loop(self) -> None:
        pool = self.pool
        while True:
            try:
                frame = read_frame(self._stdout)
                detail = "end of stream"
            except (EOFError, OSError, ValueError) as exc:
                frame, detail = None, str(exc)
            with pool.cond:
                task = self.in_flight.popleft() if frame is not None and self.in_flight else None
                pool.cond.notify_all()
            if frame is None or task is None:
                if not pool.closing:
                    code = self.process.poll()
                    reason = detail if frame is None else "an answer nobody asked for"
                    pool.broken(
                        CryptoError(
                            f"pool worker pid {self.pid} stopped answering "
                            f"({reason}, exit code {code})"
                        )
                    )
                return
            self._answer(task, *frame)

    def _answer(self, task: _Task, opcode: int, payload: bytes) -> None:
        if opcode not in (OP_OK, OP_ERROR):
            self.pool.broken(CryptoError(f"pool worker sent unknown opcode {opcode}"))
            return
        message = payload.decode("utf-8", "replace")
        if task.job is None:  # a key load
            if opcode == OP_ERROR:
                self.pool.broken(CryptoError(f"pool worker failed to load a key: {message}"))
            return
        if opcode == OP_ERROR:
            task.job.fail(CryptoError(f"pool worker failed: {message}"))
        else:
            task.job.deliver(task.index, payload, task.stop - task.start)

    def close(self) -> None:
        """Close stdin (the worker exits), reap the process, join the threads."""
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self.process.wait(timeout=_SHUTDOWN_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        current = threading.current_thread()
        for thread in self.threads:
            if thread is not current:
                thread.join(timeout=_SHUTDOWN_GRACE_S)
        with contextlib.suppress(OSError):
            self._stdout.close()


class _Pool:
    """The workers and the queue of chunks they share."""

    def __init__(self, workers: int) -> None:
        self.cond = threading.Condition()
        self.queue: deque[_Task] = deque()
        self.closing = False
        self.error: CryptoError | None = None
        self.jobs: set[_Job] = set()
        self.workers: list[_Worker] = []
        try:
            for _ in range(workers):
                self.workers.append(_Worker(self))
        except OSError as exc:
            self.close()
            raise CryptoError(f"cannot start a crypto pool worker: {exc}") from exc

    def submit(self, job: _Job, bounds: list[tuple[int, int]]) -> None:
        with self.cond:
            if self.closing:
                raise self.error or CryptoError("the crypto pool was shut down")
            self.jobs.add(job)
            job.future.add_done_callback(lambda _: self._forget(job))
            self.queue.extend(
                _Task(job, index, start, stop) for index, (start, stop) in enumerate(bounds)
            )
            self.cond.notify_all()

    def _forget(self, job: _Job) -> None:
        with self.cond:
            self.jobs.discard(job)

    def next_task(self, worker: _Worker) -> _Task | None:
        """The next chunk for ``worker`` (call with ``cond`` held); None when closing."""
        while True:
            if self.closing:
                return None
            if self.queue and len(worker.in_flight) < IN_FLIGHT:
                task = self.queue.popleft()
                if task.job is not None and task.job.done:
                    continue  # its batch failed already
                return task
            self.cond.wait()

    def broken(self, exc: CryptoError) -> None:
        """Fail every unfinished batch and stop the pool (it restarts on the next batch)."""
        with self.cond:
            if self.closing:
                return
            self.closing, self.error = True, exc
            jobs = list(self.jobs)
            self.queue.clear()
            self.cond.notify_all()
        for job in jobs:
            job.fail(exc)
        _discard(self)
        threading.Thread(target=self._close_workers, daemon=True).start()

    def close(self) -> None:
        """Stop the workers; unfinished batches fail with CryptoError."""
        with self.cond:
            already = self.closing
            self.closing = True
            self.error = self.error or CryptoError("the crypto pool was shut down")
            jobs = list(self.jobs)
            self.queue.clear()
            self.cond.notify_all()
        if not already:
            for job in jobs:
                job.fail(self.error)
        self._close_workers()

    def _close_workers(self) -> None:
        for worker in self.workers:
            worker.close()


def _discard(pool: _Pool) -> None:
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None


def _current_pool() -> _Pool:
    global _pool, _atexit_registered
    with _lock:
        if _pool is None:
            if not _atexit_registered:
                atexit.register(shutdown)
                _atexit_registered = True
            _pool = _Pool(max(worker_count(), 1))
        return _pool


def shutdown() -> None:
    """Stop every pool worker (idempotent; the pool restarts lazily on the next batch)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


def worker_pids() -> list[int]:
    """Process ids of the running pool workers (for tests and diagnostics)."""
    with _lock:
        return [] if _pool is None else [w.pid for w in _pool.workers]


def _submit(
    load: tuple[int, bytes, bytes],
    prefix: bytes,
    opcode: int,
    items: Sequence[int],
    in_width: int,
    out_width: int,
) -> Future[list[mpz]]:
    """Queue ``opcode`` over ``items`` on the pool; the future holds results in input order."""
    if not items:
        done: Future[list[mpz]] = Future()
        done.set_result([])
        return done
    pool = _current_pool()
    bounds = _chunks(len(items), chunk_size(len(items), len(pool.workers)))
    job = _Job(load, prefix, opcode, items, in_width, out_width, len(bounds))
    pool.submit(job, bounds)
    return job.future


def submit_encrypt(
    public_blob: bytes,
    key_id: bytes,
    plaintexts: Sequence[int],
    plain_width: int,
    cipher_width: int,
) -> Future[list[mpz]]:
    """Queue the encryption of ``plaintexts`` (already range-checked) on the pool.

    Parameters
    ----------
    public_blob : bytes
        ``PublicKey.to_bytes()``.
    key_id : bytes
        32-byte SHA-256 of ``public_blob``.
    plaintexts : sequence of int, length n_values
        Integers in ``[0, n)``; not copied, so do not change it until the future is done.
    plain_width, cipher_width : int
        Byte widths of a plaintext (of n) and of a ciphertext (of n**2).

    Returns
    -------
    Future of list of mpz
        The ciphertexts in input order, or :class:`~homolr.errors.CryptoError`.
    """
    load = (OP_LOAD_PUBLIC, key_id, public_blob)
    return _submit(load, key_id, OP_ENCRYPT, plaintexts, plain_width, cipher_width)


def submit_decrypt(
    public_blob: bytes,
    key_id: bytes,
    p: int,
    q: int,
    ciphertexts: Sequence[int],
    plain_width: int,
    cipher_width: int,
    *,
    constant_time: bool = False,
) -> Future[list[mpz]]:
    """Queue the decryption of ``ciphertexts`` (range-checked) on the pool.

    ``p`` and ``q`` travel over the pipes only. With ``constant_time`` the workers use
    ``gmpy2.powmod_sec`` for the CRT exponentiations. Same conventions as
    :func:`submit_encrypt`; the future holds the plaintexts in input order.
    """
    p_bytes = mpz(p).to_bytes((int(p).bit_length() + 7) // 8, "big")
    q_bytes = mpz(q).to_bytes((int(q).bit_length() + 7) // 8, "big")
    load = (OP_LOAD_PRIVATE, key_id, concat_fields([public_blob, p_bytes, q_bytes]))
    mode = MODE_CONSTANT_TIME if constant_time else MODE_FAST
    prefix = key_id + bytes([mode])
    return _submit(load, prefix, OP_DECRYPT, ciphertexts, cipher_width, plain_width)


def encrypt(
    public_blob: bytes,
    key_id: bytes,
    plaintexts: Sequence[int],
    plain_width: int,
    cipher_width: int,
) -> list[mpz]:
    """Encrypt on the pool and wait (see :func:`submit_encrypt`)."""
    return submit_encrypt(public_blob, key_id, plaintexts, plain_width, cipher_width).result()
