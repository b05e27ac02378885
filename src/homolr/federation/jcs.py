"""RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value.

The federation file is hashed in this form, so the hash depends on what the file means and not
on how it is written. JCS is small enough to implement here (no dependency):

* objects: members sorted by their names compared as UTF-16 code units; no whitespace anywhere;
* strings: ``"`` and ``\\`` escaped, ``\\b \\f \\n \\r \\t`` in their short form, the other
  control characters U+0000..U+001F as ``\\u00xx`` (lower-case hex), everything else literal;
  output encoded as UTF-8 (lone surrogates are refused: they have no UTF-8 form);
* numbers: IEEE 754 doubles written like ECMAScript's ``Number.prototype.toString``: the
  shortest digit string that reads back as the same double, in plain notation for decimal
  exponents -6 < n <= 21, else as ``d.ddde±x`` (``1e-05`` -> ``0.00001``, ``1e21`` ->
  ``1e+21``, ``2.0`` -> ``2``, ``-0.0`` -> ``0``); NaN and infinities are refused;
* integers are written as decimal integers and must lie within +-2**53, where every integer is
  a double, so that they mean the same in every JSON reader (I-JSON, RFC 7493).

:func:`canonicalize` is the entry point; :func:`serialize_number` is exposed for tests and tools.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TypeAlias

#: A JSON value as Python holds it (tuples are accepted as arrays).
JsonValue: TypeAlias = (
    bool | int | float | str | Sequence["JsonValue"] | Mapping[str, "JsonValue"] | None
)

#: Largest magnitude of an integer that JCS writes exactly (every integer up to it is a double).
MAX_EXACT_INTEGER = 2**53

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def canonicalize(value: JsonValue) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises
    ------
    TypeError
        for a value that is not JSON (e.g. bytes, a set, a non-string object key).
    ValueError
        for NaN, an infinity, an integer beyond +-2**53, a lone surrogate in a string.
    """
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode("utf-8")


def _write(value: JsonValue, parts: list[str]) -> None:
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int | float):
        parts.append(serialize_number(value))
    elif isinstance(value, str):
        parts.append(serialize_string(value))
    elif isinstance(value, Mapping):
        _write_object(value, parts)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _write(item, parts)
        parts.append("]")
    else:
        raise TypeError(f"JCS: {type(value).__name__} is not a JSON value")


def _write_object(value: Mapping[str, JsonValue], parts: list[str]) -> None:
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"JCS: object key {key!r} is not a string")
    parts.append("{")
    for index, key in enumerate(sorted(value, key=_utf16_units)):
        if index:
            parts.append(",")
        parts.append(serialize_string(key))
        parts.append(":")
        _write(value[key], parts)
    parts.append("}")


def _utf16_units(key: str) -> bytes:
    """Sort key: big-endian UTF-16 bytes compare like the sequence of UTF-16 code units."""
    return key.encode("utf-16-be", errors="surrogatepass")


def serialize_string(text: str) -> str:
    """Return ``text`` as a JCS string literal (quotes included).

    Raises
    ------
    ValueError
        when ``text`` holds a lone surrogate (not Unicode text; no UTF-8 form).
    """
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        raise ValueError(
            f"JCS: lone surrogate U+{ord(surrogate.group()):04X} at index {surrogate.start()}"
        )
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def serialize_number(value: int | float) -> str:
    """Return ``value`` as ECMAScript ``Number.prototype.toString`` writes the double.

    Raises
    ------
    TypeError
        for a bool (JSON ``true``/``false`` are not numbers).
    ValueError
        for NaN, an infinity or an integer beyond +-2**53.
    """
    if isinstance(value, bool):
        raise TypeError("JCS: a bool is not a number")
    if isinstance(value, int):
        if abs(value) > MAX_EXACT_INTEGER:
            raise ValueError(f"JCS: integer {value} is beyond +-2**53 and not exact as a double")
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"JCS: {value} is not a JSON number")
    if value == 0:
        return "0"  # also -0.0
    sign = "-" if value < 0 else ""
    digits, n = _shortest_digits(abs(value))
    return sign + _layout(digits, n)


def _shortest_digits(value: float) -> tuple[str, int]:
    """Digits ``s`` (no leading/trailing zeros) and ``n`` with ``value = 0.s * 10**n``.

    ``repr`` gives the shortest decimal that reads back as the same double and, among those,
    the closest to it: exactly the digits ECMAScript's Number::toString chooses.
    """
    _sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)  # finite by the caller's check
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    return stripped, exponent + len(stripped)


def _layout(digits: str, n: int) -> str:
    """ECMAScript Number::toString steps 6-10 for ``0.digits * 10**n`` (k = len(digits))."""
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    exponent = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


__all__ = [
    "MAX_EXACT_INTEGER",
    "JsonValue",
    "canonicalize",
    "serialize_number",
    "serialize_string",
]
