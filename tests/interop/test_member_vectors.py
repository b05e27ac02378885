"""The independent member's arithmetic against the test vectors of docs/protocol.md (sections 4-7, 12).

These check two things at once: that ``member.py`` implements the documents, and that the
documents' worked examples agree with each other. A small key (512 bits, generated here) stands
in for the PS's wherever a vector needs real encryption.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import gmpy2
import numpy as np
import pytest

from tests.interop import member as mb


def _prime(bits: int) -> Any:
    while True:
        p = gmpy2.next_prime(gmpy2.mpz(secrets.randbits(bits)) | (1 << (bits - 1)))
        if p.bit_length() == bits:
            return p


@pytest.fixture(scope="module")
def keypair() -> tuple[mb.PublicKey, Any]:
    """A 512-bit DJN key laid out as section 4.1 says, and ``lambda = (p-1)(q-1)``."""
    while True:
        p, q = _prime(256), _prime(256)
        n = p * q
        if n.bit_length() == 512 and p != q:
            break
    x = gmpy2.mpz(secrets.randbelow(int(n)))
    hs = gmpy2.powmod((-x * x) % n, n, n * n)
    raw = b"HLPK\x01" + (512).to_bytes(2, "big") + int(n).to_bytes(64, "big")
    raw += int(hs).to_bytes(128, "big")
    key = mb.PublicKey(n, hs, 512, raw)
    return key, (p - 1) * (q - 1)


def _decrypt(c: Any, key: mb.PublicKey, lam: Any) -> int:
    """Textbook Paillier decryption with ``g = n + 1``: ``L(c^lambda) * lambda^-1 mod n``."""
    u = gmpy2.powmod(c, lam, key.nsquare)
    return int((u - 1) // key.n * gmpy2.invert(lam, key.n) % key.n)


def _signed(p: int, key: mb.PublicKey) -> int:
    return p - int(key.n) if p > key.n // 2 else p


def test_fixed_point_vectors() -> None:
    assert mb.encode(-0.15625, 4) == -2
    assert mb.encode(0.09375, 4) == 2
    assert [mb.encode(v, 0) for v in (2.5, 3.5, -2.5)] == [2, 4, -2]


def test_public_key_layout_is_parsed_and_small_keys_are_refused() -> None:
    toy = bytes.fromhex("484c504b010008bb5b97")  # section 12: n = 187, hs = 23447
    with pytest.raises(mb.MemberError, match="bits"):
        mb.parse_public_key(toy, 8)
    with pytest.raises(mb.MemberError, match="magic"):
        mb.parse_public_key(b"HLPX" + toy[4:], 8)
    with pytest.raises(mb.MemberError, match="bytes"):
        mb.parse_public_key(toy + b"\x00", 8)


def test_toy_encryption_of_section_4_4() -> None:
    n, n2, hs = 187, 187 * 187, 23447
    assert (1 + 5 * n) * pow(hs, 3, n2) % n2 == 10094


def test_encrypted_step_and_packing_of_sections_6_5_and_7_3(
    keypair: tuple[mb.PublicKey, Any],
) -> None:
    key, lam = keypair
    x, y = np.array([[1.0], [-0.5]]), np.array([1.0, 0.0])
    xb = np.hstack([np.ones((2, 1)), x])
    m_t, b_t = mb.taylor_step(xb.T @ xb, xb.T @ (0.5 - y), 2, 0.5, 0.01)
    np.testing.assert_array_equal(m_t, [[0.87, -0.03125], [-0.03125, 0.916875]])
    k = [[mb.encode(v, 8) for v in row] for row in m_t.tolist()]
    b = [mb.encode(v, 16) for v in b_t.tolist()]
    assert (k, b) == ([[223, -8], [-8, 235]], [0, 12288])

    model = [mb.encrypt(v % int(key.n), key) for v in (64, -128)]
    u = mb.matvec(k, b, model, key)
    assert [_signed(_decrypt(c, key, lam), key) for c in u] == [15296, -18304]

    packing = mb.Packing(64, 10, key.n_bits)
    (packed,) = mb.pack_encrypted(u, key, packing)
    plain = 0x1FFFFFFFFFFFEE200008000000000003BC0
    assert _decrypt(packed, key, lam) == plain == packing.plaintext([15296, -18304])
    assert packed not in u  # re-randomized: not a deterministic function of the inputs
    total = _decrypt(packed * mb.pack_encrypted(u, key, packing)[0] % key.nsquare, key, lam)
    mask = (1 << 74) - 1
    assert [((total >> (74 * j)) & mask) - 2 * 2**63 for j in range(2)] == [30592, -36608]


def test_packing_from_plaintext_spans_groups(keypair: tuple[mb.PublicKey, Any]) -> None:
    key, lam = keypair
    packing = mb.Packing(64, 10, key.n_bits)
    assert packing.slots == 6  # floor(511 / 74)
    values = [(-1) ** i * (2**62 + i) for i in range(8)]
    groups = mb.pack_plain(values, key, packing)
    assert len(groups) == 2
    decoded = []
    for g, c in zip(packing.groups(8), groups, strict=True):
        p = _decrypt(c, key, lam)
        assert p < 1 << (74 * len(g))
        decoded += [((p >> (74 * j)) & ((1 << 74) - 1)) - 2**63 for j in range(len(g))]
    assert decoded == values
    with pytest.raises(mb.MemberError, match="slot range"):
        packing.plaintext([2**63])


def test_moments_vector_and_scale_of_section_7_6() -> None:
    assert [mb.bound_exponent(b) for b in (4300, 0.5, 1.0, 3.0)] == [13, -1, 0, 2]
    assert mb.moments_scale(2) == 32
    assert [mb.moments_scale(w) for w in (3, 4, 5, 17, 18, 549, 550, 1024)] == [
        31, 31, 30, 29, 28, 24, 23, 23,
    ]  # fmt: skip
    vector = mb.moments_vector(np.array([[1000.0, 0.25], [-3000.0, -0.5]]), [4300, 0.5])
    assert [mb.encode(v, 32) for v in vector] == [
        8589934592, -1048576000, -2147483648, 640000000, 5368709120,
    ]  # fmt: skip
    with pytest.raises(mb.MemberError, match="bounds"):
        mb.moments_vector(np.array([[4301.0, 0.0]]), [4300, 0.5])


def test_schedules_of_section_7_2() -> None:
    class Plan:
        learning_rate, schedule = 0.15, "invsqrt"

    plan = Plan()
    assert mb.learning_rate(plan, 3) == 0.15 / 2
    plan.schedule = "inverse"
    assert mb.learning_rate(plan, 4) == 0.15 / 5
    plan.schedule = "constant"
    assert mb.learning_rate(plan, 9) == 0.15


def test_csv_columns_are_matched_by_name(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x1,id,y,x0\n2.5,7,1,-1\n0.5,8,0,3\n")
    x, y = mb.load_rows(path, ["x0", "x1"], 2)
    np.testing.assert_array_equal(x, [[-1.0, 2.5], [3.0, 0.5]])
    np.testing.assert_array_equal(y, [1.0, 0.0])
    path.write_text("x0,x1,y,z\n1,2,1,3\n")
    with pytest.raises(mb.MemberError, match="unexpected \\['z'\\]"):
        mb.load_rows(path, ["x0", "x1"], 2)
    path.write_text("x0,x1,y\n1,2,2\n")
    with pytest.raises(mb.MemberError, match=":2:"):
        mb.load_rows(path, ["x0", "x1"], 2)
