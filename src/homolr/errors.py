"""The one exception tree of homolr.

Every error that homolr raises on purpose derives from :class:`HomolrError`, so a caller
(the CLI, the gRPC servicer) can catch one root and print a clear message instead of a
traceback. Errors that mirror a built-in category also derive from that built-in, so
``except ValueError`` keeps working for callers that expect the python-paillier habits::

    HomolrError
     ├── ConfigError                 bad option, plan or file setting (names the option)
     ├── DataError                   bad CSV / model file (names file, line, column)
     ├── CryptoError
     │    ├── KeyMismatchError       (also ValueError) operands under different keys
     │    ├── InvalidCiphertextError (also ValueError) bytes that are no ciphertext of this key
     │    └── EncodingOverflowError  (also OverflowError) value in the guard band / slot overflow
     ├── ProtocolError               (also ValueError) malformed message from a peer
     ├── RoundError                  late, duplicate, wrong-round or unknown-worker submission
     ├── PolicyError                 the key holder refuses (e.g. fewer than min_workers in a sum)
     ├── AttestationError            a check on the enclave's quote failed (names check, expected, got)
     └── TransportError              a peer could not be reached or answered with an error
"""

from __future__ import annotations


class HomolrError(Exception):
    """Root of every error homolr raises on purpose."""


class ConfigError(HomolrError):
    """An option, training plan or deployment setting is invalid."""


class DataError(HomolrError):
    """A data or model file is malformed; the message names file, line and column."""


class CryptoError(HomolrError):
    """Base of the cryptographic errors."""


class KeyMismatchError(CryptoError, ValueError):
    """Operands were encrypted under different public keys."""


class InvalidCiphertextError(CryptoError, ValueError):
    """Bytes or an integer that cannot be a ciphertext under this key."""


class EncodingOverflowError(CryptoError, OverflowError):
    """A decoded value lies in the guard band, or a packed slot overflowed."""


class ProtocolError(HomolrError, ValueError):
    """A message from a peer is malformed (wrong size, bad field, unknown version)."""


class RoundError(HomolrError):
    """A submission does not fit the current round (late, duplicate, wrong round, unknown worker)."""


class PolicyError(HomolrError):
    """The key holder refuses an operation its policy forbids."""


class AttestationError(HomolrError):
    """An attestation check failed; the message names the check, expected and received values."""

    def __init__(self, check: str, expected: object, received: object, detail: str = "") -> None:
        self.check = check
        self.expected = expected
        self.received = received
        message = f"attestation check '{check}' failed: expected {expected}, received {received}"
        super().__init__(f"{message} ({detail})" if detail else message)


class TransportError(HomolrError):
    """A peer could not be reached, or answered with an error."""


__all__ = [
    "AttestationError",
    "ConfigError",
    "CryptoError",
    "DataError",
    "EncodingOverflowError",
    "HomolrError",
    "InvalidCiphertextError",
    "KeyMismatchError",
    "PolicyError",
    "ProtocolError",
    "RoundError",
    "TransportError",
]
