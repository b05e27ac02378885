"""SGX ECDSA quote (version 3) parsing and synthetic construction.

The layout follows Intel's *SGX ECDSA Quote Library API* (``sgx_quote_3_t`` in
``sgx_quote_3.h``); every integer is little-endian and the structures are packed::

    offset  size  field
         0     2  version                      (3)
         2     2  att_key_type                 (2 = ECDSA-256-with-P-256)
         4     4  tee_type / att_key_data_0    (0 = SGX)
         8     2  qe_svn
        10     2  pce_svn
        12    16  qe_vendor_id                 (Intel: 939a7233-f79c-4ca9-940a-0db3957f0607)
        28    20  user_data
        48   384  isv_enclave_report           (sgx_report_body_t, see REPORT_BODY_LAYOUT)
       432     4  signature_data_len
       436     *  signature_data               (sgx_ql_ecdsa_sig_data_t)

``sgx_report_body_t`` (384 bytes, offsets relative to the body)::

         0    16  cpu_svn            16    4  misc_select      20   12  reserved1
        32    16  isv_ext_prod_id    48   16  attributes (flags u64, xfrm u64)
        64    32  mr_enclave         96   32  reserved2       128   32  mr_signer
       160    32  reserved3         192   64  config_id       256    2  isv_prod_id
       258     2  isv_svn           260    2  config_svn      262   42  reserved4
       304    16  isv_family_id     320   64  report_data

``sgx_ql_ecdsa_sig_data_t``::

         0    64  isv_enclave_report signature (r || s, P-256)
        64    64  ecdsa_attestation_key (x || y)
       128   384  qe_report (sgx_report_body_t of the Quoting Enclave)
       512    64  qe_report signature
       576     2  qe_auth_data size (n), followed by n bytes of auth data
     578+n     2  certification data type (5 = PCK certificate chain, PEM)
     580+n     4  certification data size (m), followed by m bytes

Parsing here is *structural only*: it proves nothing about who produced the quote.
The signature chain is checked by a :class:`homolr.enclave.verifier.QuoteVerifier`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from homolr.errors import AttestationError

QUOTE_VERSION_3 = 3
ATT_KEY_TYPE_ECDSA_P256 = 2
TEE_TYPE_SGX = 0
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

HEADER_SIZE = 48
REPORT_BODY_SIZE = 384
REPORT_DATA_SIZE = 64
MEASUREMENT_SIZE = 32
SIGNATURE_LEN_OFFSET = HEADER_SIZE + REPORT_BODY_SIZE  # 432
SIGNATURE_DATA_OFFSET = SIGNATURE_LEN_OFFSET + 4  # 436
MIN_QUOTE_SIZE = SIGNATURE_DATA_OFFSET

ECDSA_SIGNATURE_SIZE = 64
ECDSA_PUBLIC_KEY_SIZE = 64
#: Fixed part of sgx_ql_ecdsa_sig_data_t before the variable QE auth data.
ECDSA_FIXED_SIZE = 2 * ECDSA_SIGNATURE_SIZE + ECDSA_PUBLIC_KEY_SIZE + REPORT_BODY_SIZE  # 576
CERT_TYPE_PCK_CERT_CHAIN = 5

SGX_FLAGS_INITTED = 0x01
SGX_FLAGS_DEBUG = 0x02
SGX_FLAGS_MODE64BIT = 0x04

#: Marker written in the certification data of synthetic quotes (never valid for a verifier).
SYNTHETIC_CERT_DATA = b"HOMOLR-SYNTHETIC-QUOTE: unsigned filler, never valid for a real verifier"

_HEADER = struct.Struct("<HHIHH16s20s")
_REPORT_BODY = struct.Struct("<16sI12s16sQQ32s32s32s32s64sHHH42s16s64s")

assert _HEADER.size == HEADER_SIZE
assert _REPORT_BODY.size == REPORT_BODY_SIZE


@dataclass(frozen=True)
class Attributes:
    """SGX enclave attributes (``sgx_attributes_t``): flags and XSAVE feature mask."""

    flags: int
    xfrm: int

    @property
    def is_debug(self) -> bool:
        """True when ``SGX_FLAGS_DEBUG`` is set: the enclave's memory is readable by the host."""
        return bool(self.flags & SGX_FLAGS_DEBUG)


@dataclass(frozen=True)
class ReportBody:
    """An SGX report body (``sgx_report_body_t``, 384 bytes); reserved fields are dropped."""

    cpu_svn: bytes
    misc_select: int
    isv_ext_prod_id: bytes
    attributes: Attributes
    mr_enclave: bytes
    mr_signer: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes

    @property
    def is_debug(self) -> bool:
        """True when the reporting enclave runs in debug mode."""
        return self.attributes.is_debug


@dataclass(frozen=True)
class EcdsaSignatureData:
    """The parsed pieces of ``sgx_ql_ecdsa_sig_data_t`` (not verified here)."""

    isv_report_signature: bytes
    attestation_key: bytes
    qe_report: ReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    certification_data_type: int
    certification_data: bytes


@dataclass(frozen=True)
class Quote:
    """A structurally parsed SGX ECDSA quote, version 3.

    Attributes mirror the header of ``sgx_quote_3_t``; ``report_body`` is the ISV enclave
    report; ``signature_data`` is the raw signature section and ``ecdsa`` its parsed
    pieces. ``signed_data`` (header + report body) is what the attestation key signs.
    """

    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes
    report_body: ReportBody
    signature_data: bytes
    ecdsa: EcdsaSignatureData
    signed_data: bytes

    @property
    def cpu_svn(self) -> bytes:
        """CPU security version of the reporting platform (16 bytes)."""
        return self.report_body.cpu_svn

    @property
    def misc_select(self) -> int:
        """MISCSELECT of the enclave."""
        return self.report_body.misc_select

    @property
    def attributes(self) -> Attributes:
        """Enclave attributes (flags, xfrm)."""
        return self.report_body.attributes

    @property
    def mr_enclave(self) -> bytes:
        """MRENCLAVE: the measurement of the enclave's code and initial data (32 bytes)."""
        return self.report_body.mr_enclave

    @property
    def mr_signer(self) -> bytes:
        """MRSIGNER: SHA-256 of the enclave signer's RSA modulus (32 bytes)."""
        return self.report_body.mr_signer

    @property
    def isv_prod_id(self) -> int:
        """ISVPRODID assigned by the enclave signer."""
        return self.report_body.isv_prod_id

    @property
    def isv_svn(self) -> int:
        """ISVSVN: the enclave's security version number."""
        return self.report_body.isv_svn

    @property
    def report_data(self) -> bytes:
        """The 64 bytes of user report data the enclave put into its report."""
        return self.report_body.report_data

    @property
    def is_debug(self) -> bool:
        """True when the quoted enclave runs in debug mode (not confidential)."""
        return self.report_body.is_debug

    @property
    def is_synthetic(self) -> bool:
        """True for quotes made by :func:`build_quote` (their signature is filler)."""
        return self.ecdsa.certification_data == SYNTHETIC_CERT_DATA

    def summary(self) -> str:
        """One line describing the enclave identity, for logs."""
        return (
            f"SGX quote v{self.version}: MRENCLAVE={self.mr_enclave.hex()} "
            f"MRSIGNER={self.mr_signer.hex()} ISVPRODID={self.isv_prod_id} "
            f"ISVSVN={self.isv_svn} debug={self.is_debug}"
        )


def _format_error(expected: object, received: object, detail: str) -> AttestationError:
    return AttestationError("quote-format", expected, received, detail)


def parse_report_body(data: bytes) -> ReportBody:
    """Parse a 384-byte ``sgx_report_body_t``.

    Raises
    ------
    AttestationError
        check ``quote-format`` when ``data`` is not exactly 384 bytes.
    """
    if len(data) != REPORT_BODY_SIZE:
        raise _format_error(f"{REPORT_BODY_SIZE} bytes of report body", f"{len(data)} bytes", "")
    (
        cpu_svn,
        misc_select,
        _reserved1,
        isv_ext_prod_id,
        flags,
        xfrm,
        mr_enclave,
        _reserved2,
        mr_signer,
        _reserved3,
        config_id,
        isv_prod_id,
        isv_svn,
        config_svn,
        _reserved4,
        isv_family_id,
        report_data,
    ) = _REPORT_BODY.unpack(data)
    return ReportBody(
        cpu_svn=cpu_svn,
        misc_select=misc_select,
        isv_ext_prod_id=isv_ext_prod_id,
        attributes=Attributes(flags=flags, xfrm=xfrm),
        mr_enclave=mr_enclave,
        mr_signer=mr_signer,
        config_id=config_id,
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        config_svn=config_svn,
        isv_family_id=isv_family_id,
        report_data=report_data,
    )


def encode_report_body(body: ReportBody) -> bytes:
    """Serialise a :class:`ReportBody` to its 384-byte layout (reserved fields zero)."""
    return _REPORT_BODY.pack(
        body.cpu_svn,
        body.misc_select,
        bytes(12),
        body.isv_ext_prod_id,
        body.attributes.flags,
        body.attributes.xfrm,
        body.mr_enclave,
        bytes(32),
        body.mr_signer,
        bytes(32),
        body.config_id,
        body.isv_prod_id,
        body.isv_svn,
        body.config_svn,
        bytes(42),
        body.isv_family_id,
        body.report_data,
    )


def parse_ecdsa_signature_data(sig: bytes) -> EcdsaSignatureData:
    """Parse ``sgx_ql_ecdsa_sig_data_t``; offsets in errors are absolute quote offsets."""
    base = SIGNATURE_DATA_OFFSET

    def take(offset: int, size: int, field: str) -> bytes:
        if offset + size > len(sig):
            raise _format_error(
                f"{size} bytes for field {field} at offset {base + offset}",
                f"{max(0, len(sig) - offset)} bytes left in signature_data "
                f"({len(sig)} bytes declared by signature_data_len)",
                "truncated signature data",
            )
        return sig[offset : offset + size]

    isv_sig = take(0, ECDSA_SIGNATURE_SIZE, "isv_enclave_report_signature")
    att_key = take(64, ECDSA_PUBLIC_KEY_SIZE, "ecdsa_attestation_key")
    qe_report = parse_report_body(take(128, REPORT_BODY_SIZE, "qe_report"))
    qe_sig = take(512, ECDSA_SIGNATURE_SIZE, "qe_report_signature")
    (auth_size,) = struct.unpack("<H", take(ECDSA_FIXED_SIZE, 2, "qe_auth_data.size"))
    auth = take(ECDSA_FIXED_SIZE + 2, auth_size, "qe_auth_data.data")
    cert_offset = ECDSA_FIXED_SIZE + 2 + auth_size
    cert_type, cert_size = struct.unpack(
        "<HI", take(cert_offset, 6, "certification_data.type/size")
    )
    cert = take(cert_offset + 6, cert_size, "certification_data.data")
    end = cert_offset + 6 + cert_size
    if end != len(sig):
        raise _format_error(
            f"signature_data to end at offset {base + end} after certification_data",
            f"{len(sig) - end} trailing bytes",
            "signature_data_len disagrees with the ECDSA signature structure",
        )
    return EcdsaSignatureData(
        isv_report_signature=isv_sig,
        attestation_key=att_key,
        qe_report=qe_report,
        qe_report_signature=qe_sig,
        qe_auth_data=auth,
        certification_data_type=cert_type,
        certification_data=cert,
    )


def parse_quote(data: bytes) -> Quote:
    """Parse an SGX ECDSA quote (version 3) into a :class:`Quote`.

    Parameters
    ----------
    data
        The raw quote bytes as produced by the Quoting Enclave (e.g. read from Gramine's
        ``/dev/attestation/quote``).

    Raises
    ------
    AttestationError
        check ``quote-format`` on a truncated or garbage quote, an unsupported version,
        attestation key type or TEE type, or trailing bytes; the message names the field
        and offset.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _format_error("bytes", type(data).__name__, "quote must be raw bytes")
    data = bytes(data)
    if len(data) < MIN_QUOTE_SIZE:
        raise _format_error(
            f"at least {MIN_QUOTE_SIZE} bytes (48-byte header, 384-byte report body, "
            "4-byte signature_data_len)",
            f"{len(data)} bytes",
            "truncated quote",
        )
    version, att_key_type, tee_type, qe_svn, pce_svn, qe_vendor_id, user_data = _HEADER.unpack_from(
        data, 0
    )
    if version != QUOTE_VERSION_3:
        raise _format_error(
            f"version {QUOTE_VERSION_3} (field version at offset 0)",
            f"version {version}",
            "unsupported quote version",
        )
    if att_key_type != ATT_KEY_TYPE_ECDSA_P256:
        raise _format_error(
            f"att_key_type {ATT_KEY_TYPE_ECDSA_P256} (ECDSA-256-with-P-256) at offset 2",
            f"att_key_type {att_key_type}",
            "unsupported attestation key type",
        )
    if tee_type != TEE_TYPE_SGX:
        raise _format_error(
            f"tee_type {TEE_TYPE_SGX} (SGX) at offset 4",
            f"tee_type {tee_type:#x}",
            "unsupported TEE type",
        )
    report_body = parse_report_body(data[HEADER_SIZE:SIGNATURE_LEN_OFFSET])
    (sig_len,) = struct.unpack_from("<I", data, SIGNATURE_LEN_OFFSET)
    available = len(data) - SIGNATURE_DATA_OFFSET
    if sig_len != available:
        raise _format_error(
            f"{sig_len} bytes of signature_data at offset {SIGNATURE_DATA_OFFSET} "
            f"(signature_data_len at offset {SIGNATURE_LEN_OFFSET})",
            f"{available} bytes",
            "truncated quote" if sig_len > available else "trailing bytes after the quote",
        )
    signature_data = data[SIGNATURE_DATA_OFFSET:]
    return Quote(
        version=version,
        att_key_type=att_key_type,
        tee_type=tee_type,
        qe_svn=qe_svn,
        pce_svn=pce_svn,
        qe_vendor_id=qe_vendor_id,
        user_data=user_data,
        report_body=report_body,
        signature_data=signature_data,
        ecdsa=parse_ecdsa_signature_data(signature_data),
        signed_data=data[:SIGNATURE_LEN_OFFSET],
    )


def _check_size(name: str, value: bytes, size: int) -> bytes:
    if len(value) != size:
        raise ValueError(f"build_quote: {name} must be {size} bytes, got {len(value)}")
    return bytes(value)


def _synthetic_signature_data() -> bytes:
    """Filler ``sgx_ql_ecdsa_sig_data_t`` whose certification data is a readable marker."""
    zero_body = bytes(REPORT_BODY_SIZE)
    fixed = bytes(ECDSA_SIGNATURE_SIZE) + bytes(ECDSA_PUBLIC_KEY_SIZE) + zero_body
    fixed += bytes(ECDSA_SIGNATURE_SIZE)
    auth = struct.pack("<H", 0)
    cert = struct.pack("<HI", CERT_TYPE_PCK_CERT_CHAIN, len(SYNTHETIC_CERT_DATA))
    return fixed + auth + cert + SYNTHETIC_CERT_DATA


def build_quote(
    *,
    mr_enclave: bytes,
    mr_signer: bytes,
    isv_prod_id: int,
    isv_svn: int,
    report_data: bytes,
    debug: bool = False,
    version: int = QUOTE_VERSION_3,
    att_key_type: int = ATT_KEY_TYPE_ECDSA_P256,
    tee_type: int = TEE_TYPE_SGX,
    qe_svn: int = 0,
    pce_svn: int = 0,
    cpu_svn: bytes = bytes(16),
    misc_select: int = 0,
    xfrm: int = 0x3,
    signature_data: bytes | None = None,
) -> bytes:
    """Build a synthetic SGX ECDSA v3 quote following the documented layout.

    For tests and :class:`homolr.enclave.provider.SimulatedQuoteProvider` only: unless
    ``signature_data`` is given, the signature section is filler (zero signatures and a
    certification data marker, :data:`SYNTHETIC_CERT_DATA`) and can never pass a real
    verifier.

    Raises
    ------
    ValueError
        when a byte field has the wrong length (a programming error in the caller).
    """
    flags = SGX_FLAGS_INITTED | SGX_FLAGS_MODE64BIT | (SGX_FLAGS_DEBUG if debug else 0)
    body = ReportBody(
        cpu_svn=_check_size("cpu_svn", cpu_svn, 16),
        misc_select=misc_select,
        isv_ext_prod_id=bytes(16),
        attributes=Attributes(flags=flags, xfrm=xfrm),
        mr_enclave=_check_size("mr_enclave", mr_enclave, MEASUREMENT_SIZE),
        mr_signer=_check_size("mr_signer", mr_signer, MEASUREMENT_SIZE),
        config_id=bytes(64),
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        config_svn=0,
        isv_family_id=bytes(16),
        report_data=_check_size("report_data", report_data, REPORT_DATA_SIZE),
    )
    header = _HEADER.pack(
        version, att_key_type, tee_type, qe_svn, pce_svn, INTEL_QE_VENDOR_ID, bytes(20)
    )
    sig = _synthetic_signature_data() if signature_data is None else bytes(signature_data)
    return header + encode_report_body(body) + struct.pack("<I", len(sig)) + sig


__all__ = [
    "ATT_KEY_TYPE_ECDSA_P256",
    "INTEL_QE_VENDOR_ID",
    "MEASUREMENT_SIZE",
    "MIN_QUOTE_SIZE",
    "QUOTE_VERSION_3",
    "REPORT_DATA_SIZE",
    "SGX_FLAGS_DEBUG",
    "SYNTHETIC_CERT_DATA",
    "Attributes",
    "EcdsaSignatureData",
    "Quote",
    "ReportBody",
    "build_quote",
    "encode_report_body",
    "parse_ecdsa_signature_data",
    "parse_quote",
    "parse_report_body",
]
