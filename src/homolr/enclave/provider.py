"""Quote providers: how the parameter server obtains a quote over its report data.

:class:`GramineQuoteProvider` uses Gramine's attestation pseudo-filesystem: it checks
that ``attestation_type`` reads ``dcap``, writes the 64 bytes of report data to
``user_report_data`` and reads the resulting quote from ``quote``. The directory is a
parameter so tests can point it at ordinary files.

:class:`SimulatedQuoteProvider` builds **synthetic, unsigned** quotes for tests and
integration tests without SGX hardware. It proves nothing; only
:class:`~homolr.enclave.verifier.SimulatedQuoteVerifier` accepts its quotes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol, runtime_checkable

from homolr.enclave.quote import REPORT_DATA_SIZE, build_quote, parse_quote
from homolr.errors import AttestationError

_LOG = logging.getLogger(__name__)

GRAMINE_ATTESTATION_DIR = Path("/dev/attestation")


@runtime_checkable
class QuoteProvider(Protocol):
    """Produces an SGX quote whose report data is the given 64 bytes."""

    def quote_for(self, report_data: bytes) -> bytes:
        """Return a quote binding ``report_data`` (64 bytes)."""
        ...


def _require_report_data(report_data: bytes) -> bytes:
    if len(report_data) != REPORT_DATA_SIZE:
        raise AttestationError(
            "report-data-size", f"{REPORT_DATA_SIZE} bytes", f"{len(report_data)} bytes"
        )
    return bytes(report_data)


class GramineQuoteProvider:
    """Obtain DCAP quotes through Gramine's ``/dev/attestation`` interface.

    Parameters
    ----------
    root
        The attestation directory (``/dev/attestation`` inside a Gramine SGX enclave).
    """

    def __init__(self, root: Path = GRAMINE_ATTESTATION_DIR) -> None:
        self.root = Path(root)

    def attestation_type(self) -> str:
        """Return the content of ``<root>/attestation_type`` (e.g. ``dcap``, ``none``).

        Raises
        ------
        AttestationError
            check ``attestation-type`` when the file cannot be read.
        """
        path = self.root / "attestation_type"
        try:
            return path.read_text(encoding="ascii").strip().strip("\x00")
        except (OSError, UnicodeDecodeError) as error:
            raise AttestationError(
                "attestation-type",
                f"a readable {path} containing 'dcap'",
                f"{type(error).__name__}: {error}",
                "not running inside gramine-sgx? (gramine-direct has no attestation)",
            ) from None

    def _require_dcap(self) -> None:
        kind = self.attestation_type()
        if kind != "dcap":
            raise AttestationError(
                "attestation-type",
                f"'dcap' in {self.root / 'attestation_type'}",
                repr(kind),
                'set sgx.remote_attestation = "dcap" in the Gramine manifest and run '
                "under gramine-sgx with a DCAP quote provider (epid is not supported)",
            )

    def quote_for(self, report_data: bytes) -> bytes:
        """Write ``report_data`` to ``user_report_data`` and read ``quote``.

        Raises
        ------
        AttestationError
            ``attestation-type`` when Gramine is not configured for DCAP,
            ``quote-generation`` when the pseudo-files cannot be used,
            ``quote-format`` / ``report-data`` when the returned quote is malformed or
            does not carry the report data just written.
        """
        data = _require_report_data(report_data)
        self._require_dcap()
        user_report_data = self.root / "user_report_data"
        quote_path = self.root / "quote"
        try:
            # One unbuffered write of exactly 64 bytes, as Gramine requires.
            with open(user_report_data, "wb", buffering=0) as handle:
                written = handle.write(data)
            if written != REPORT_DATA_SIZE:
                raise OSError(f"short write of {written} bytes to {user_report_data}")
            quote = quote_path.read_bytes()
        except OSError as error:
            raise AttestationError(
                "quote-generation",
                f"writable {user_report_data} and readable {quote_path}",
                f"{type(error).__name__}: {error}",
            ) from None
        received = parse_quote(quote).report_data
        if received != data:
            raise AttestationError(
                "report-data",
                data.hex(),
                received.hex(),
                f"{quote_path} returned a quote over other report data",
            )
        return quote


class SimulatedQuoteProvider:
    """Builds synthetic, UNSIGNED quotes. For tests and integration tests ONLY.

    The quotes follow the v3 layout so the whole binding / policy path can be exercised
    without SGX hardware, but their signature section is filler: a real verifier
    (:class:`~homolr.enclave.verifier.DcapVerifier`) always rejects them, and using this
    provider gives no security at all. A warning is logged on creation and every quote.
    """

    def __init__(
        self,
        mrenclave: bytes,
        mrsigner: bytes,
        isv_prod_id: int,
        isv_svn: int,
        debug: bool = False,
    ) -> None:
        self.mrenclave = bytes(mrenclave)
        self.mrsigner = bytes(mrsigner)
        self.isv_prod_id = isv_prod_id
        self.isv_svn = isv_svn
        self.debug = debug
        # Fail early on bad sizes rather than at the first quote.
        build_quote(
            mr_enclave=self.mrenclave,
            mr_signer=self.mrsigner,
            isv_prod_id=isv_prod_id,
            isv_svn=isv_svn,
            report_data=bytes(REPORT_DATA_SIZE),
        )
        _LOG.warning(
            "SIMULATED quote provider in use: quotes are synthetic and unsigned; this is "
            "for tests only and provides NO attestation"
        )

    def quote_for(self, report_data: bytes) -> bytes:
        """Return a synthetic quote over ``report_data`` (64 bytes)."""
        data = _require_report_data(report_data)
        _LOG.warning("SIMULATED quote generated (unsigned, insecure)")
        return build_quote(
            mr_enclave=self.mrenclave,
            mr_signer=self.mrsigner,
            isv_prod_id=self.isv_prod_id,
            isv_svn=self.isv_svn,
            report_data=data,
            debug=self.debug,
        )


__all__ = [
    "GRAMINE_ATTESTATION_DIR",
    "GramineQuoteProvider",
    "QuoteProvider",
    "SimulatedQuoteProvider",
]
