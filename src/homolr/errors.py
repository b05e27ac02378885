"""The one exception tree of homolr.

Every error that homolr raises on purpose derives from :class:`HomolrError`, so a caller
(the CLI, the gRPC servicer) can catch one root and print a clear message instead of a
traceback. Errors that mirror a built-in category also derive from that built-in, so
``except ValueError`` keeps working for callers that expect the python-paillier habits::

    HomolrError                      exit status (ExitCode)
     ├── ConfigError                 3  bad option, plan or file setting (names the option)
     ├── DataError                   3  bad CSV / model file (names file, line, column)
     ├── CryptoError                 7
     │    ├── KeyMismatchError       (also ValueError) operands under different keys
     │    ├── InvalidCiphertextError (also ValueError) bytes that are no ciphertext of this key
     │    └── EncodingOverflowError  (also OverflowError) value in the guard band / slot overflow
     ├── ProtocolError               7  (also ValueError) malformed message from a peer
     ├── RoundError                  7  late, early or duplicate submission; round closed
     ├── PreconditionError           7  wrong run or protocol version, not joined, training over
     ├── PolicyError                 3  refused by policy (not a member; the key holder's rules)
     ├── AttestationError            6  a check on the enclave's quote failed (check, expected, got)
     ├── TransportError              7  a peer could not be reached or answered with an error
     ├── JoinTimeoutError            4  not every member joined before the join deadline
     ├── RunPausedError              5  a member missed a round / quorum lost; resumable
     ├── RollbackError               8  the PS asked for a round this member already left behind
     ├── TrainingFailedError         9  the run cannot go on (e.g. repeated overflowing sums)
     └── Interrupted                 130 (SIGINT) / 143 (SIGTERM)

The exit statuses are the same for the PS and the workers; :class:`ExitCode` lists them and
``homolr --help`` prints them.
"""

from __future__ import annotations

import enum
import signal


class ExitCode(enum.IntEnum):
    """Exit statuses of every homolr command (PS and workers alike)."""

    OK = 0  #: training completed its plan or its stopping rule (or the command succeeded)
    INTERNAL = 1  #: a bug: an unexpected error (with a traceback)
    USAGE = 2  #: bad command line (argparse)
    CONFIG = 3  #: configuration, federation or data error; not a member
    JOIN_TIMEOUT = 4  #: not every member joined in time
    PAUSED = 5  #: a member missed a round or the quorum was lost; resume with --resume
    ATTESTATION = 6  #: the PS's enclave could not be verified (or could not attest)
    PROTOCOL = 7  #: the peer was unreachable past the retry budget, or broke the protocol
    ROLLBACK = 8  #: the PS asked for an old round (rolled back); nothing new was sent
    FAILED = 9  #: training failed (e.g. overflowing sums in consecutive rounds)
    SIGINT = 130  #: interrupted by SIGINT (Ctrl-C)
    SIGTERM = 143  #: stopped by SIGTERM


EXIT_CODES_HELP = "exit status: " + ", ".join(
    f"{code.value} {code.name.lower().replace('_', ' ')}" for code in ExitCode
)


class HomolrError(Exception):
    """Root of every error homolr raises on purpose."""

    exit_code: ExitCode = ExitCode.PROTOCOL


class ConfigError(HomolrError):
    """An option, training plan or deployment setting is invalid."""

    exit_code = ExitCode.CONFIG


class DataError(HomolrError):
    """A data or model file is malformed; the message names file, line and column."""

    exit_code = ExitCode.CONFIG


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
    """A submission does not fit the open round (late, early, duplicate, round already closed).

    On the wire: ABORTED. The member fetches the model of the round the PS has open and goes on.
    """


class PreconditionError(HomolrError):
    """A request that cannot fit this run at all: another run id or protocol version, a member
    that has not joined, training that is over, a join with other values than before.

    On the wire: FAILED_PRECONDITION. The member stops (or joins first, for "not joined").
    """


class PolicyError(HomolrError):
    """Refused by policy: a caller that is not a member, or a sum the key holder must not decrypt."""

    exit_code = ExitCode.CONFIG


class AttestationError(HomolrError):
    """An attestation check failed; the message names the check, expected and received values."""

    exit_code = ExitCode.ATTESTATION

    def __init__(self, check: str, expected: object, received: object, detail: str = "") -> None:
        self.check = check
        self.expected = expected
        self.received = received
        message = f"attestation check '{check}' failed: expected {expected}, received {received}"
        super().__init__(f"{message} ({detail})" if detail else message)


class TransportError(HomolrError):
    """A peer could not be reached, or answered with an error."""


class JoinTimeoutError(HomolrError):
    """Not every member joined before the join deadline; the message names the missing ones."""

    exit_code = ExitCode.JOIN_TIMEOUT


class RunPausedError(HomolrError):
    """A member missed a round's deadline (participation "all") or the quorum was lost.

    The run's sealed checkpoint stays; ``homolr ps --resume`` continues it when the members are back.
    """

    exit_code = ExitCode.PAUSED


class RollbackError(HomolrError):
    """The PS asked for a round below this member's high-water mark: it was rolled back."""

    exit_code = ExitCode.ROLLBACK


class TrainingFailedError(HomolrError):
    """The run cannot go on (for example, sums that overflow in consecutive rounds)."""

    exit_code = ExitCode.FAILED


class Interrupted(HomolrError):
    """A SIGINT or SIGTERM ended the command."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = ExitCode.SIGTERM if signum == signal.SIGTERM else ExitCode.SIGINT
        super().__init__(f"stopped by {signal.Signals(signum).name}")


__all__ = [
    "EXIT_CODES_HELP",
    "AttestationError",
    "ConfigError",
    "CryptoError",
    "DataError",
    "EncodingOverflowError",
    "ExitCode",
    "HomolrError",
    "Interrupted",
    "InvalidCiphertextError",
    "JoinTimeoutError",
    "KeyMismatchError",
    "PolicyError",
    "PreconditionError",
    "ProtocolError",
    "RollbackError",
    "RoundError",
    "RunPausedError",
    "TrainingFailedError",
    "TransportError",
]
