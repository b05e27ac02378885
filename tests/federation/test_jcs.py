"""RFC 8785 canonical JSON: the RFC's published examples, hand-checked cases, and ECMAScript
itself (node) as an independent reference on random values."""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
import subprocess
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homolr.federation.jcs import canonicalize, serialize_number, serialize_string

# RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]
APPENDIX_B_REFUSED = ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"]


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    assert serialize_number(_double(bits)) == expected


@pytest.mark.parametrize("bits", APPENDIX_B_REFUSED)
def test_nan_and_infinities_are_refused(bits: str) -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        serialize_number(_double(bits))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e-05, "0.00001"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (2.0, "2"),
        (300.0, "300"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (0.3, "0.3"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (123e-20, "1.23e-18"),
        (-2.5e30, "-2.5e+30"),
        (12345.678, "12345.678"),
        (2**53, "9007199254740992"),
        (-(2**53), "-9007199254740992"),
        (0, "0"),
        (7, "7"),
        (-7, "-7"),
    ],
)
def test_hand_checked_numbers(value: float, expected: str) -> None:
    assert serialize_number(value) == expected


def test_integers_beyond_2_pow_53_and_bools_are_not_numbers() -> None:
    with pytest.raises(ValueError, match="beyond"):
        serialize_number(2**53 + 1)
    with pytest.raises(ValueError, match="beyond"):
        canonicalize({"seed": -(2**63)})
    with pytest.raises(TypeError, match="bool"):
        serialize_number(True)


def test_rfc8785_section_3_2_2_example() -> None:
    # The input of RFC 8785 section 3.2.2, parsed; the expected bytes are section 3.2.3's.
    parsed = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonicalize(parsed) == expected.encode("utf-8")


def test_rfc8785_section_3_2_3_sorting_by_utf16_code_units() -> None:
    # U+1F600 is the surrogate pair D83D DE00, which sorts *before* U+FB33 in UTF-16 although
    # its code point is larger: the case a code-point sort gets wrong.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    expected = "{" + ",".join(f"{serialize_string(k)}:{serialize_string(value[k])}" for k in keys)
    assert canonicalize(value) == (expected + "}").encode("utf-8")
    assert sorted(value) != keys  # Python's code-point order differs: the test is meaningful


def test_string_escapes() -> None:
    assert serialize_string('a"b\\c') == '"a\\"b\\\\c"'
    assert serialize_string("\b\f\n\r\t") == '"\\b\\f\\n\\r\\t"'
    assert serialize_string("\x00\x1f\x0b") == '"\\u0000\\u001f\\u000b"'
    assert serialize_string("\x7f\u2028/é😀") == '"\x7f\u2028/é😀"'  # literal, '/' unescaped


def test_lone_surrogates_bytes_and_odd_types_are_refused() -> None:
    with pytest.raises(ValueError, match="lone surrogate U\\+D800"):
        canonicalize({"k": "a\ud800"})
    with pytest.raises(ValueError, match="lone surrogate"):
        canonicalize({"\udfff": 1})
    with pytest.raises(TypeError, match="bytes"):
        canonicalize({"k": b"raw"})
    with pytest.raises(TypeError, match="not a string"):
        canonicalize({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="set"):
        canonicalize({"k": {1, 2}})  # type: ignore[dict-item]


def test_structure_has_no_whitespace_and_tuples_are_arrays() -> None:
    assert (
        canonicalize({"b": [1, (2.5, None)], "a": {}, "c": []})
        == b'{"a":{},"b":[1,[2.5,null]],"c":[]}'
    )


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_round_trip_with_the_fewest_digits(value: float) -> None:
    """Brute-force oracle for the digit choice: no shorter decimal reads back as ``value``."""
    text = serialize_number(value)
    assert float(text) == value
    mantissa = text.lstrip("-").split("e")[0].replace(".", "").strip("0")
    digits = max(len(mantissa), 1)
    if digits > 1:
        shorter = f"{value:.{digits - 2}e}"
        assert float(shorter) != value


# --- ECMAScript itself as the reference --------------------------------------------------------

NODE = shutil.which("node")
# A JCS canonicalizer in ECMAScript: JSON.stringify for primitives (RFC 8785 section 3.2.2 is
# defined by it), Array.prototype.sort's default order (UTF-16 code units) for object keys.
_NODE_JCS = r"""
const canon = v => v === null || typeof v !== 'object' ? JSON.stringify(v)
  : Array.isArray(v) ? '[' + v.map(canon).join(',') + ']'
  : '{' + Object.keys(v).sort().map(k => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}';
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const buf = Buffer.alloc(8);
const numbers = input.numbers.map(h => { buf.write(h, 'hex'); return canon(buf.readDoubleBE(0)); });
process.stdout.write(JSON.stringify({numbers, documents: input.documents.map(canon)}));
"""


def _random_doubles(rng: random.Random, count: int) -> list[float]:
    values: list[float] = []
    while len(values) < count:
        kind = rng.randrange(4)
        if kind == 0:
            value = _double(f"{rng.getrandbits(64):016x}")
        elif kind == 1:  # short decimals, the values people write in config files
            value = rng.randrange(-(10**6), 10**6) * 10.0 ** rng.randrange(-12, 12)
        elif kind == 2:  # around the notation switches at 1e21 and 1e-7
            value = rng.uniform(0.5, 20) * 10.0 ** rng.choice([-8, -7, -6, -5, 19, 20, 21, 22])
        else:
            value = rng.random() * 10.0 ** rng.randrange(-320, 308)
        if math.isfinite(value):
            values.append(value)
    return values


def _random_text(rng: random.Random) -> str:
    alphabet = ["a", "Z", "0", '"', "\\", "/", "\n", "\x00", "\x1f", "\x7f", "é", "€", "\u2028",
                "\ufb33", "\U0001f600", "\U00010000", " "]  # fmt: skip
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 6)))


def _random_document(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(7 if depth < 3 else 4)
    if choice == 0:
        return rng.choice([None, True, False])
    if choice == 1:
        return _random_doubles(rng, 1)[0]
    if choice == 2:
        return rng.randrange(-(2**53), 2**53)
    if choice == 3:
        return _random_text(rng)
    if choice == 4:
        return [_random_document(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {_random_text(rng): _random_document(rng, depth + 1) for _ in range(rng.randrange(5))}


@pytest.mark.skipif(NODE is None, reason="node (ECMAScript reference) not installed")
def test_matches_ecmascript_on_random_numbers_and_documents() -> None:
    rng = random.Random(8785)
    numbers = _random_doubles(rng, 20000)
    documents = [_random_document(rng) for _ in range(500)]
    request = {
        "numbers": [struct.pack(">d", value).hex() for value in numbers],
        "documents": documents,
    }
    assert NODE is not None
    result = subprocess.run(
        [NODE, "-e", _NODE_JCS],
        input=json.dumps(request, ensure_ascii=True),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    reference = json.loads(result.stdout)
    mismatches = [
        (value, ours, theirs)
        for value, ours, theirs in zip(
            numbers, (serialize_number(v) for v in numbers), reference["numbers"], strict=True
        )
        if ours != theirs
    ]
    assert mismatches == []
    for document, expected in zip(documents, reference["documents"], strict=True):
        assert canonicalize(document).decode("utf-8") == expected
