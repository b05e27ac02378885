"""Entry point of one process-pool worker: ``python -m homolr.crypto._pool_worker``.

Reads frames from stdin and answers on stdout (protocol in :mod:`homolr.crypto.parallel`).
Exits 0 when stdin reaches end of file, which also happens when the parent dies. Stray
output from libraries goes to stderr: file descriptor 1 is redirected there at start, and
frames use a private duplicate of the original stdout.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import OrderedDict
from typing import IO, TypeVar

from homolr.crypto import parallel
from homolr.crypto._wire import (
    ints_from_bytes,
    ints_to_bytes,
    read_frame,
    split_fields,
    write_frame,
)
from homolr.crypto.keys import PrivateKey, PublicKey

__all__ = ["KeyCache", "handle", "main"]

_KEY_ID_BYTES = 32
_MAX_KEYS = 4
_K = TypeVar("_K", PublicKey, PrivateKey)


class KeyCache:
    """Public and private keys loaded by the parent, by key id (least recently loaded dropped)."""

    def __init__(self) -> None:
        self.public: OrderedDict[bytes, PublicKey] = OrderedDict()
        self.private: OrderedDict[bytes, PrivateKey] = OrderedDict()

    @staticmethod
    def _put(store: OrderedDict[bytes, _K], key_id: bytes, key: _K) -> None:
        store[key_id] = key
        store.move_to_end(key_id)
        while len(store) > _MAX_KEYS:
            store.popitem(last=False)

    def load_public(self, blob: bytes) -> None:
        key = PublicKey.from_bytes(blob, insecure_small_key=True)
        self._put(self.public, key.key_id(), key)

    def load_private(self, payload: bytes) -> None:
        blob, p, q = split_fields(payload, 3)
        public_key = PublicKey.from_bytes(blob, insecure_small_key=True)
        key = PrivateKey(public_key, int.from_bytes(p, "big"), int.from_bytes(q, "big"))
        self._put(self.private, public_key.key_id(), key)


def _lookup(store: OrderedDict[bytes, _K], payload: bytes) -> tuple[_K, bytes]:
    key_id = payload[:_KEY_ID_BYTES]
    if key_id not in store:
        raise KeyError(f"key {key_id.hex()[:16]} was not loaded in this worker")
    return store[key_id], payload[_KEY_ID_BYTES:]


def handle(cache: KeyCache, opcode: int, payload: bytes) -> bytes:
    """Execute one request and return the OK payload."""
    if opcode == parallel.OP_LOAD_PUBLIC:
        cache.load_public(payload)
        return b""
    if opcode == parallel.OP_LOAD_PRIVATE:
        cache.load_private(payload)
        return b""
    if opcode == parallel.OP_ENCRYPT:
        public_key, data = _lookup(cache.public, payload)
        plaintexts = ints_from_bytes(data, public_key.plaintext_bytes)
        checked = [public_key.check_plaintext(m, i) for i, m in enumerate(plaintexts)]
        return ints_to_bytes(public_key.encrypt_in_process(checked), public_key.ciphertext_bytes)
    if opcode == parallel.OP_DECRYPT:
        private_key, data = _lookup(cache.private, payload)
        if not data or data[0] not in (parallel.MODE_FAST, parallel.MODE_CONSTANT_TIME):
            raise ValueError("DECRYPT needs a mode byte of 0 or 1 after the key id")
        key = private_key.public_key
        ciphertexts = ints_from_bytes(data[1:], key.ciphertext_bytes)
        constant_time = data[0] == parallel.MODE_CONSTANT_TIME
        plaintexts = private_key.decrypt_in_process(ciphertexts, constant_time=constant_time)
        return ints_to_bytes(plaintexts, key.plaintext_bytes)
    raise ValueError(f"unknown opcode {opcode}")


def serve(source: IO[bytes], sink: IO[bytes]) -> int:
    """Answer frames from ``source`` on ``sink`` until end of file."""
    cache = KeyCache()
    while True:
        frame = read_frame(source)
        if frame is None:
            return 0
        opcode, payload = frame
        try:
            result = handle(cache, opcode, payload)
        except Exception as exc:  # reported to the parent, which raises CryptoError
            write_frame(sink, parallel.OP_ERROR, f"{type(exc).__name__}: {exc}".encode())
        else:
            write_frame(sink, parallel.OP_OK, result)


def main() -> int:
    """Run the worker on the process's stdin/stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    sink = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with sink:
        return serve(sys.stdin.buffer, sink)


if __name__ == "__main__":
    sys.exit(main())
