"""Quote signature verification and the complete worker-side attestation check.

A :class:`QuoteVerifier` checks that a quote was produced by a genuine, up-to-date SGX
platform (the ECDSA signature chain up to Intel's root CA, TCB status, revocation).
:class:`DcapVerifier` delegates this to Intel's DCAP Quote Verification Library
(``libsgx_dcap_quoteverify.so.1``) through :mod:`ctypes`, in QVL mode (no QvE enclave is
needed on the worker; the library fetches collateral through the platform's quote
provider library, e.g. from a PCCS). :class:`SimulatedQuoteVerifier` accepts only the
synthetic quotes of :class:`~homolr.enclave.provider.SimulatedQuoteProvider` and exists
for integration tests.

:func:`verify_attestation` is the whole check a worker runs before encrypting anything:
parse, report data binding, policy, signature chain, in that order.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from homolr.enclave.policy import AttestationPolicy, check_quote
from homolr.enclave.quote import Quote, parse_quote
from homolr.errors import AttestationError, ConfigError

_LOG = logging.getLogger(__name__)

DCAP_LIBRARY = "libsgx_dcap_quoteverify.so.1"

SGX_QL_SUCCESS = 0x0000
QV_RESULT_OK = 0x0000
QV_RESULT_UNSPECIFIED = 0xA006

#: ``sgx_ql_qv_result_t`` values (sgx_qve_header.h).
QV_RESULT_NAMES: dict[int, str] = {
    0x0000: "OK",
    0xA001: "CONFIG_NEEDED",
    0xA002: "OUT_OF_DATE",
    0xA003: "OUT_OF_DATE_CONFIG_NEEDED",
    0xA004: "INVALID_SIGNATURE",
    0xA005: "REVOKED",
    0xA006: "UNSPECIFIED",
    0xA007: "SW_HARDENING_NEEDED",
    0xA008: "CONFIG_AND_SW_HARDENING_NEEDED",
}

#: Results where the signature chain is valid but the platform's TCB needs attention.
NON_TERMINAL_RESULTS = frozenset({0xA001, 0xA002, 0xA003, 0xA007, 0xA008})

#: The ``quote3_error_t`` codes a verifying caller is likely to meet (sgx_ql_lib_common.h).
QUOTE3_ERROR_NAMES: dict[int, str] = {
    0x0000: "SGX_QL_SUCCESS",
    0xE001: "SGX_QL_ERROR_UNEXPECTED",
    0xE002: "SGX_QL_ERROR_INVALID_PARAMETER",
    0xE003: "SGX_QL_ERROR_OUT_OF_MEMORY",
    0xE00E: "SGX_QL_PLATFORM_LIB_UNAVAILABLE",
    0xE016: "SGX_QL_ENCLAVE_LOAD_ERROR",
    0xE019: "SGX_QL_NETWORK_ERROR",
    0xE01A: "SGX_QL_MESSAGE_ERROR",
}


def _code_name(names: dict[int, str], code: int) -> str:
    return names.get(code, f"UNKNOWN_{code:#06x}")


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of a signature-chain verification.

    Attributes
    ----------
    verifier
        Which verifier produced it (``"dcap"``, ``"simulated"``).
    accepted
        True when the quote may be trusted under the verifier's settings.
    status
        Symbolic status (``"OK"``, ``"OUT_OF_DATE"``, ``"SGX_QL_NETWORK_ERROR"``...).
    code
        The numeric code behind ``status``.
    collateral_expired
        True when the verification collateral (TCB info, CRLs) has expired.
    detail
        Free text explaining a rejection or a warning.
    supplemental_data
        Raw ``sgx_ql_qv_supplemental_t`` bytes from DCAP (empty otherwise).
    """

    verifier: str
    accepted: bool
    status: str
    code: int
    collateral_expired: bool = False
    detail: str = ""
    supplemental_data: bytes = b""


@runtime_checkable
class QuoteVerifier(Protocol):
    """Verifies a quote's signature chain; must not raise for a merely invalid quote."""

    def verify(self, quote_bytes: bytes) -> VerificationResult:
        """Return the verification outcome for ``quote_bytes``."""
        ...


def classify_dcap_result(
    qv_result: int,
    collateral_expiration_status: int,
    *,
    allow_outdated_tcb: bool,
    allow_expired_collateral: bool,
    supplemental_data: bytes = b"",
) -> VerificationResult:
    """Map a DCAP ``sgx_ql_qv_result_t`` to accept / reject (pure).

    ``OK`` is accepted; the non-terminal TCB statuses (``CONFIG_NEEDED``,
    ``OUT_OF_DATE``, ``OUT_OF_DATE_CONFIG_NEEDED``, ``SW_HARDENING_NEEDED``,
    ``CONFIG_AND_SW_HARDENING_NEEDED``) only with ``allow_outdated_tcb``; terminal ones
    (``INVALID_SIGNATURE``, ``REVOKED``, ``UNSPECIFIED``, unknown codes) never. Expired
    collateral rejects an otherwise acceptable quote unless ``allow_expired_collateral``.
    """
    status = _code_name(QV_RESULT_NAMES, qv_result)
    expired = collateral_expiration_status != 0
    details: list[str] = []
    if qv_result == QV_RESULT_OK:
        accepted = True
    elif qv_result in NON_TERMINAL_RESULTS:
        accepted = allow_outdated_tcb
        details.append(
            "platform TCB needs attention"
            + ("; accepted because outdated TCB is allowed" if accepted else "")
        )
    else:
        accepted = False
        details.append("terminal verification result")
    if expired:
        details.append(
            "verification collateral has expired"
            + (
                "; accepted because expired collateral is allowed"
                if allow_expired_collateral
                else ""
            )
        )
        accepted = accepted and allow_expired_collateral
    return VerificationResult(
        verifier="dcap",
        accepted=accepted,
        status=status,
        code=qv_result,
        collateral_expired=expired,
        detail="; ".join(details),
        supplemental_data=supplemental_data,
    )


class DcapVerifier:
    """Quote verification with Intel's DCAP QVL (``sgx_qv_verify_quote``) via ctypes.

    Parameters
    ----------
    library
        Shared library name or path (default ``libsgx_dcap_quoteverify.so.1``).
    allow_outdated_tcb
        Accept the non-terminal TCB statuses (see :func:`classify_dcap_result`).
    allow_expired_collateral
        Accept quotes whose collateral has expired.
    clock
        Returns the current UNIX time, used as ``expiration_check_date``.

    Raises
    ------
    ConfigError
        when the library cannot be loaded or lacks the expected symbols.
    """

    def __init__(
        self,
        library: str = DCAP_LIBRARY,
        *,
        allow_outdated_tcb: bool = False,
        allow_expired_collateral: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            self._lib = ctypes.CDLL(library)
            verify = self._lib.sgx_qv_verify_quote
            size_fn = self._lib.sgx_qv_get_quote_supplemental_data_size
        except (OSError, AttributeError) as error:
            raise ConfigError(
                f"--attestation dcap: cannot load Intel's DCAP quote verification library "
                f"{library!r} ({error}); install the libsgx-dcap-quote-verify package and a "
                "quote provider library (libsgx-dcap-default-qpl configured for your PCCS), "
                "or use --attestation none for development"
            ) from None
        verify.restype = ctypes.c_uint32
        verify.argtypes = [
            ctypes.POINTER(ctypes.c_uint8),  # p_quote
            ctypes.c_uint32,  # quote_size
            ctypes.c_void_p,  # p_quote_collateral (NULL: fetched via the QPL)
            ctypes.c_long,  # expiration_check_date (time_t)
            ctypes.POINTER(ctypes.c_uint32),  # p_collateral_expiration_status
            ctypes.POINTER(ctypes.c_uint32),  # p_quote_verification_result
            ctypes.c_void_p,  # p_qve_report_info (NULL: QVL mode, no QvE)
            ctypes.c_uint32,  # supplemental_data_size
            ctypes.POINTER(ctypes.c_uint8),  # p_supplemental_data
        ]
        size_fn.restype = ctypes.c_uint32
        size_fn.argtypes = [ctypes.POINTER(ctypes.c_uint32)]
        self._verify = verify
        self._supplemental_size = size_fn
        self._library = library
        self.allow_outdated_tcb = allow_outdated_tcb
        self.allow_expired_collateral = allow_expired_collateral
        self._clock = clock

    def _supplemental_buffer_size(self) -> int:
        size = ctypes.c_uint32(0)
        code = int(self._supplemental_size(ctypes.byref(size)))
        if code != SGX_QL_SUCCESS:
            _LOG.warning(
                "sgx_qv_get_quote_supplemental_data_size returned %s; verifying without "
                "supplemental data",
                _code_name(QUOTE3_ERROR_NAMES, code),
            )
            return 0
        return int(size.value)

    def verify(self, quote_bytes: bytes) -> VerificationResult:
        """Run ``sgx_qv_verify_quote`` on ``quote_bytes`` and classify the result."""
        quote = bytes(quote_bytes)
        quote_buffer = (ctypes.c_uint8 * len(quote)).from_buffer_copy(quote)
        supplemental_size = self._supplemental_buffer_size()
        supplemental = (ctypes.c_uint8 * max(supplemental_size, 1))()
        expiration = ctypes.c_uint32(1)
        result = ctypes.c_uint32(QV_RESULT_UNSPECIFIED)
        code = int(
            self._verify(
                quote_buffer,
                len(quote),
                None,
                int(self._clock()),
                ctypes.byref(expiration),
                ctypes.byref(result),
                None,
                supplemental_size,
                supplemental if supplemental_size else None,
            )
        )
        if code != SGX_QL_SUCCESS:
            return VerificationResult(
                verifier="dcap",
                accepted=False,
                status=_code_name(QUOTE3_ERROR_NAMES, code),
                code=code,
                detail=f"sgx_qv_verify_quote in {self._library} failed",
            )
        return classify_dcap_result(
            int(result.value),
            int(expiration.value),
            allow_outdated_tcb=self.allow_outdated_tcb,
            allow_expired_collateral=self.allow_expired_collateral,
            supplemental_data=bytes(supplemental)[:supplemental_size],
        )


class SimulatedQuoteVerifier:
    """Accepts only synthetic quotes from ``SimulatedQuoteProvider``. NOT SECURE.

    For integration tests that exercise the whole attestation path (binding, policy)
    without SGX hardware. Anything that is not a homolr synthetic quote is rejected, so a
    real quote can never be "verified" by this class by accident.
    """

    def verify(self, quote_bytes: bytes) -> VerificationResult:
        """Accept a well-formed synthetic quote, reject anything else."""
        try:
            synthetic = parse_quote(quote_bytes).is_synthetic
        except AttestationError as error:
            return VerificationResult(
                verifier="simulated",
                accepted=False,
                status="MALFORMED",
                code=-1,
                detail=str(error),
            )
        if not synthetic:
            return VerificationResult(
                verifier="simulated",
                accepted=False,
                status="NOT_SYNTHETIC",
                code=-1,
                detail="the simulated verifier only accepts homolr synthetic quotes",
            )
        _LOG.warning(
            "SIMULATED attestation: the quote is synthetic and unsigned; the parameter "
            "server is NOT verified to run in an SGX enclave"
        )
        return VerificationResult(
            verifier="simulated",
            accepted=True,
            status="SIMULATED",
            code=0,
            detail="synthetic quote accepted by the simulated verifier (insecure)",
        )


@dataclass(frozen=True)
class AttestationOutcome:
    """A quote that passed :func:`verify_attestation`, with its verification result."""

    quote: Quote
    verification: VerificationResult


def verify_attestation(
    quote_bytes: bytes,
    policy: AttestationPolicy,
    expected_report_data: bytes,
    verifier: QuoteVerifier,
) -> AttestationOutcome:
    """Run the whole worker-side attestation check, in order.

    1. parse the quote (``quote-format``);
    2. its report data must equal ``expected_report_data`` (``report-data``): the member computes
       it with :func:`~homolr.enclave.binding.report_data_for_federation` from the Paillier key
       received, the pinned TLS key and the hash of its own federation file;
    3. the policy (``mrenclave``, ``mrsigner``, ``isv-prod-id``, ``isv-svn``, ``debug``);
    4. the signature chain through ``verifier`` (``quote-signature``).

    Parameters
    ----------
    quote_bytes
        The quote returned by the key-exchange RPC.
    policy
        The accepted enclave identity.
    expected_report_data
        The 64 bytes the quote must bind.
    verifier
        Signature-chain verifier (:class:`DcapVerifier` in production).

    Raises
    ------
    AttestationError
        naming the failed check, with expected and received values.
    """
    quote = parse_quote(quote_bytes)
    check_quote(quote, policy, expected_report_data)
    result = verifier.verify(bytes(quote_bytes))
    if not result.accepted:
        raise AttestationError(
            "quote-signature",
            f"a quote accepted by the {result.verifier} verifier (status OK)",
            f"status {result.status} ({result.code:#06x})"
            if result.code >= 0
            else f"status {result.status}",
            result.detail,
        )
    if result.status != "OK":
        _LOG.warning("attestation accepted with status %s: %s", result.status, result.detail)
    return AttestationOutcome(quote=quote, verification=result)


__all__ = [
    "DCAP_LIBRARY",
    "NON_TERMINAL_RESULTS",
    "QUOTE3_ERROR_NAMES",
    "QV_RESULT_NAMES",
    "AttestationOutcome",
    "DcapVerifier",
    "QuoteVerifier",
    "SimulatedQuoteVerifier",
    "VerificationResult",
    "classify_dcap_result",
    "verify_attestation",
]
