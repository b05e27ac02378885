"""Byte forms used by the crypto package: fixed-width big-endian integers and pool frames.

No pickle and no decimal strings: a batch of integers is the concatenation of each value as
exactly ``width`` big-endian bytes, and a pool message is a 5-byte header (opcode, payload
length as unsigned 32-bit big-endian) followed by the payload.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import IO

from gmpy2 import mpz

__all__ = [
    "FRAME_HEADER",
    "concat_fields",
    "ints_from_bytes",
    "ints_to_bytes",
    "read_frame",
    "split_fields",
    "write_frame",
]

FRAME_HEADER = struct.Struct(">BI")
_FIELD_LENGTH = struct.Struct(">I")


def ints_to_bytes(values: Sequence[int], width: int) -> bytes:
    """Concatenate non-negative integers as ``width``-byte big-endian fields.

    Raises
    ------
    ValueError
        A value is negative or needs more than ``width`` bytes (names the index).
    """
    parts: list[bytes] = []
    for index, value in enumerate(values):
        v = mpz(value)
        if v < 0 or v.bit_length() > 8 * width:
            raise ValueError(
                f"integer at index {index} does not fit {width} unsigned big-endian bytes"
            )
        parts.append(v.to_bytes(width, "big"))
    return b"".join(parts)


def ints_from_bytes(data: bytes | memoryview, width: int) -> list[mpz]:
    """Split ``data`` into ``width``-byte big-endian integers.

    Raises
    ------
    ValueError
        ``len(data)`` is not a multiple of ``width``.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if len(data) % width:
        raise ValueError(f"byte length {len(data)} is not a multiple of the field width {width}")
    view = memoryview(data)
    return [mpz.from_bytes(view[i : i + width], "big") for i in range(0, len(view), width)]


def concat_fields(fields: Sequence[bytes]) -> bytes:
    """Join byte strings, each prefixed with its length (unsigned 32-bit big-endian)."""
    return b"".join(_FIELD_LENGTH.pack(len(f)) + f for f in fields)


def split_fields(data: bytes, count: int) -> list[bytes]:
    """Inverse of :func:`concat_fields`; exactly ``count`` fields, no trailing bytes."""
    fields: list[bytes] = []
    offset = 0
    for index in range(count):
        if offset + _FIELD_LENGTH.size > len(data):
            raise ValueError(f"field {index}: truncated length prefix at byte {offset}")
        (length,) = _FIELD_LENGTH.unpack_from(data, offset)
        offset += _FIELD_LENGTH.size
        if offset + length > len(data):
            raise ValueError(f"field {index}: needs {length} bytes, {len(data) - offset} left")
        fields.append(data[offset : offset + length])
        offset += length
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} trailing bytes after {count} fields")
    return fields


def write_frame(stream: IO[bytes], opcode: int, payload: bytes) -> None:
    """Write one frame (header then payload) and flush."""
    stream.write(FRAME_HEADER.pack(opcode, len(payload)))
    stream.write(payload)
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    """Read ``size`` bytes, or fewer if the stream ends first."""
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> tuple[int, bytes] | None:
    """Read one frame; ``None`` on a clean end of stream before a header.

    Raises
    ------
    EOFError
        The stream ended inside a frame.
    """
    header = _read_exact(stream, FRAME_HEADER.size)
    if not header:
        return None
    if len(header) < FRAME_HEADER.size:
        raise EOFError(f"stream ended inside a frame header ({len(header)} bytes)")
    opcode, length = FRAME_HEADER.unpack(header)
    payload = _read_exact(stream, length)
    if len(payload) < length:
        raise EOFError(
            f"stream ended inside a frame (opcode {opcode}, {len(payload)} of {length} bytes)"
        )
    return opcode, payload
