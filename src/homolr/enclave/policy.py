"""Attestation policy: which enclave identities a worker accepts.

A policy pins either the exact enclave build (MRENCLAVE) or the enclave signer
(MRSIGNER) together with a product id and, optionally, a minimum security version
(ISVSVN). Debug enclaves are refused unless the policy explicitly allows them, because a
debug enclave's memory (and so the Paillier private key) is readable by the host.

:func:`check_quote` is pure: it compares a parsed quote with the policy and with the
report data the worker computed from the keys it received, and raises an
:class:`~homolr.errors.AttestationError` naming the first failed check with expected and
received values. It does not verify the quote's signature (see
:mod:`homolr.enclave.verifier`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from homolr.enclave.quote import MEASUREMENT_SIZE, REPORT_DATA_SIZE, Quote
from homolr.errors import AttestationError, ConfigError

_U16_MAX = 0xFFFF


def _check_measurement(option: str, value: bytes | None) -> None:
    if value is not None and len(value) != MEASUREMENT_SIZE:
        raise ConfigError(
            f"{option}: expected {MEASUREMENT_SIZE} bytes ({2 * MEASUREMENT_SIZE} hex digits), "
            f"got {len(value)} bytes"
        )


def _check_u16(option: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not 0 <= value <= _U16_MAX):
        raise ConfigError(f"{option}: expected an integer in [0, {_U16_MAX}], got {value!r}")


@dataclass(frozen=True)
class AttestationPolicy:
    """Expected identity of the parameter server's enclave.

    Attributes
    ----------
    mrenclave
        Exact enclave measurement (32 bytes) or None.
    mrsigner
        Enclave signer measurement (32 bytes) or None; requires ``isv_prod_id``.
    isv_prod_id
        Expected ISVPRODID (checked when not None).
    min_isv_svn
        Minimum accepted ISVSVN (checked when not None).
    allow_debug
        Accept debug enclaves (development only: their memory is not confidential).
    """

    mrenclave: bytes | None
    mrsigner: bytes | None
    isv_prod_id: int | None
    min_isv_svn: int | None
    allow_debug: bool = False

    def __post_init__(self) -> None:
        _check_measurement("--mrenclave", self.mrenclave)
        _check_measurement("--mrsigner", self.mrsigner)
        _check_u16("--isv-prod-id", self.isv_prod_id)
        _check_u16("--min-isv-svn", self.min_isv_svn)
        if self.mrenclave is None and self.mrsigner is None:
            raise ConfigError(
                "attestation policy: give --mrenclave, or --mrsigner with --isv-prod-id "
                "(neither was given, so any enclave would be accepted)"
            )
        if self.mrenclave is None and self.isv_prod_id is None:
            raise ConfigError(
                "attestation policy: --mrsigner needs --isv-prod-id (one signer may sign "
                "several products)"
            )

    @classmethod
    def from_strings(
        cls,
        *,
        mrenclave: str | None = None,
        mrsigner: str | None = None,
        isv_prod_id: str | int | None = None,
        min_isv_svn: str | int | None = None,
        allow_debug: bool = False,
    ) -> AttestationPolicy:
        """Build a policy from command-line strings (hex measurements, decimal integers).

        Raises
        ------
        ConfigError
            naming the option on bad hex, wrong length, bad integer or a missing identity.
        """
        return cls(
            mrenclave=parse_measurement("--mrenclave", mrenclave),
            mrsigner=parse_measurement("--mrsigner", mrsigner),
            isv_prod_id=parse_u16("--isv-prod-id", isv_prod_id),
            min_isv_svn=parse_u16("--min-isv-svn", min_isv_svn),
            allow_debug=allow_debug,
        )

    def describe(self) -> str:
        """Human-readable summary of what is accepted, for logs."""
        parts = []
        if self.mrenclave is not None:
            parts.append(f"MRENCLAVE={self.mrenclave.hex()}")
        if self.mrsigner is not None:
            parts.append(f"MRSIGNER={self.mrsigner.hex()}")
        if self.isv_prod_id is not None:
            parts.append(f"ISVPRODID={self.isv_prod_id}")
        if self.min_isv_svn is not None:
            parts.append(f"ISVSVN>={self.min_isv_svn}")
        parts.append("debug allowed" if self.allow_debug else "debug refused")
        return ", ".join(parts)


def parse_measurement(option: str, text: str | None) -> bytes | None:
    """Parse a 64-hex-digit measurement (optional ``0x`` prefix); None stays None.

    Raises
    ------
    ConfigError
        naming ``option`` on bad hex or a length other than 32 bytes.
    """
    if text is None:
        return None
    cleaned = text.strip().lower().removeprefix("0x")
    try:
        value = bytes.fromhex(cleaned)
    except ValueError as error:
        raise ConfigError(f"{option}: not a hex string: {text!r} ({error})") from None
    _check_measurement(option, value)
    return value


def parse_u16(option: str, text: str | int | None) -> int | None:
    """Parse a 16-bit unsigned integer (decimal or 0x-hex string); None stays None.

    Raises
    ------
    ConfigError
        naming ``option`` when the value is not an integer in [0, 65535].
    """
    if text is None:
        return None
    if isinstance(text, bool):
        raise ConfigError(f"{option}: expected an integer, got {text!r}")
    if isinstance(text, int):
        value = text
    else:
        try:
            value = int(text.strip(), 0)
        except ValueError:
            raise ConfigError(f"{option}: not an integer: {text!r}") from None
    _check_u16(option, value)
    return value


def _require_equal(check: str, expected: bytes, received: bytes, detail: str = "") -> None:
    if not hmac.compare_digest(expected, received):
        raise AttestationError(check, expected.hex(), received.hex(), detail)


def check_quote(quote: Quote, policy: AttestationPolicy, expected_report_data: bytes) -> None:
    """Check a parsed quote against the policy and the expected report data.

    Checks run in this order and the first failure raises: ``report-data``,
    ``mrenclave``, ``mrsigner``, ``isv-prod-id``, ``isv-svn``, ``debug``.

    Parameters
    ----------
    quote
        The parsed quote (its signature is checked separately).
    policy
        The accepted enclave identity.
    expected_report_data
        :func:`homolr.enclave.binding.report_data_for` of the keys the worker received.

    Raises
    ------
    AttestationError
        with ``check`` set to the failed check's name, and expected / received values.
    """
    if len(expected_report_data) != REPORT_DATA_SIZE:
        raise AttestationError(
            "report-data",
            f"{REPORT_DATA_SIZE} bytes of expected report data",
            f"{len(expected_report_data)} bytes",
            "caller passed a malformed expected value",
        )
    _require_equal(
        "report-data",
        expected_report_data,
        quote.report_data,
        "the quote does not bind the Paillier and TLS public keys received on this connection "
        "and this member's federation file (keys substituted by a man in the middle, or the PS "
        "runs under another federation file?)",
    )
    if policy.mrenclave is not None:
        _require_equal("mrenclave", policy.mrenclave, quote.mr_enclave)
    if policy.mrsigner is not None:
        _require_equal("mrsigner", policy.mrsigner, quote.mr_signer)
    if policy.isv_prod_id is not None and quote.isv_prod_id != policy.isv_prod_id:
        raise AttestationError("isv-prod-id", policy.isv_prod_id, quote.isv_prod_id)
    if policy.min_isv_svn is not None and quote.isv_svn < policy.min_isv_svn:
        raise AttestationError("isv-svn", f">= {policy.min_isv_svn}", quote.isv_svn)
    if quote.is_debug and not policy.allow_debug:
        raise AttestationError(
            "debug",
            "a production enclave (SGX_FLAGS_DEBUG clear)",
            f"a debug enclave (attributes.flags={quote.attributes.flags:#x})",
            "a debug enclave's memory is readable by the host; allow it only in development",
        )


__all__ = ["AttestationPolicy", "check_quote", "parse_measurement", "parse_u16"]
