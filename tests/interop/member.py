"""An independent ``homolr.v2`` member, written from the protocol documents alone.

It reads ``proto/homolr/v2/homolr.proto``, ``docs/protocol.md`` and nothing of ``src/homolr``: it
does not import ``homolr``. It compiles the ``.proto`` into a temporary directory at start
(``grpc_tools.protoc``) and speaks the protocol in development mode (plaintext gRPC, no
attestation, open membership), encrypted mode, with or without federated standardisation::

    python tests/interop/member.py --train-set guest.csv --id guest --server 127.0.0.1:50051

Section numbers below (``§7.3``) are those of ``docs/protocol.md``. Exit statuses are §8.6's.
"""

from __future__ import annotations

import argparse
import base64
import csv
import functools
import hashlib
import importlib
import json
import math
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, TypeVar

import gmpy2
import grpc
import numpy as np
from numpy.typing import NDArray

PROTOCOL_VERSION = "homolr.v2"  # §1.3
MAX_SAMPLES = 1_000_000_000  # §10
MAX_MESSAGE_BYTES = 5 * 1024 * 1024  # §10, what homolr's worker accepts
CALL_TIMEOUT_S, POLL_TIMEOUT_S = 10.0, 30.0  # §9.2
UPLOAD_BASE_S, UPLOAD_RATE = 30.0, 262_144  # §9.2
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.2, 5.0  # §9.2
OK, INTERNAL, CONFIG, PAUSED, PROTOCOL, ROLLBACK, FAILED = 0, 1, 3, 5, 7, 8, 9  # §8.6
DEFAULT_PROTO = Path(__file__).resolve().parents[2] / "proto" / "homolr" / "v2" / "homolr.proto"

T = TypeVar("T")
Floats = NDArray[np.float64]


class MemberError(Exception):
    """Stops the member with ``exit_code`` (§8.6)."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def log(member: str, message: str) -> None:
    print(f"interop member {member}: {message}", file=sys.stderr, flush=True)


def compile_proto(proto: Path, out: Path) -> tuple[ModuleType, ModuleType]:
    """Compile ``proto`` into ``out`` and import its message and service modules."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    include = Path(protoc.__file__).parent / "_proto"
    args = [f"-I{proto.parent}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(["protoc", *args, str(proto)]) != 0:
        raise MemberError(INTERNAL, f"{proto}: protoc failed")
    sys.path.insert(0, str(out))
    return importlib.import_module(f"{proto.stem}_pb2"), importlib.import_module(
        f"{proto.stem}_pb2_grpc"
    )


# --- Paillier (§4) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicKey:
    """A parsed and validated ``ServerInfo.public_key`` (§4.1)."""

    n: Any  # gmpy2.mpz
    hs: Any
    n_bits: int
    raw: bytes

    @property
    def nsquare(self) -> Any:
        return self.n * self.n

    @property
    def width(self) -> int:
        """Bytes of one ciphertext, ``ceil(2 n_bits / 8)`` (§4.2)."""
        return (2 * self.n_bits + 7) // 8

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def parse_public_key(raw: bytes, key_bits: int) -> PublicKey:
    """Parse the ``HLPK`` layout of §4.1 and apply every check listed there."""
    if len(raw) < 7 or raw[:4] != b"HLPK" or raw[4] != 1:
        raise MemberError(PROTOCOL, "public key: bad magic or format version")
    n_bits = int.from_bytes(raw[5:7], "big")
    l_n, l_c = (n_bits + 7) // 8, (2 * n_bits + 7) // 8
    if len(raw) != 7 + l_n + l_c:
        raise MemberError(PROTOCOL, f"public key: {len(raw)} bytes, expected {7 + l_n + l_c}")
    n = gmpy2.mpz(int.from_bytes(raw[7 : 7 + l_n], "big"))
    hs = gmpy2.mpz(int.from_bytes(raw[7 + l_n :], "big"))
    if n.bit_length() != n_bits or n_bits < 2048 or n_bits != key_bits:
        raise MemberError(PROTOCOL, f"public key: n has {n.bit_length()} bits (plan {key_bits})")
    if n % 2 == 0 or n <= 1 or not 0 < hs < n * n or gmpy2.gcd(hs, n) != 1:
        raise MemberError(PROTOCOL, "public key: n or hs out of range")
    return PublicKey(n, hs, n_bits, raw)


def parse_ciphertexts(payload: bytes, key: PublicKey, count: int) -> list[Any]:
    """Split a model payload into ``count`` ciphertexts and validate each (§4.2)."""
    if len(payload) != count * key.width:
        raise MemberError(PROTOCOL, f"model payload: {len(payload)} bytes for {count} ciphertexts")
    out = []
    for i in range(count):
        c = gmpy2.mpz(int.from_bytes(payload[i * key.width : (i + 1) * key.width], "big"))
        if not 0 < c < key.nsquare or gmpy2.gcd(c, key.n) != 1:
            raise MemberError(PROTOCOL, f"model payload: ciphertext {i} is invalid")
        out.append(c)
    return out


def randomness(key: PublicKey) -> Any:
    """A fresh DJN randomness factor ``hs^a mod n^2``, ``a`` of ``n_bits / 2`` bits (§4.3)."""
    return gmpy2.powmod(key.hs, gmpy2.mpz(secrets.randbits(key.n_bits // 2)), key.nsquare)


def encrypt(m: int, key: PublicKey) -> Any:
    """``Enc(m) = (1 + m n) r^n mod n^2`` for ``0 <= m < n`` (§4.3)."""
    return (1 + m * key.n) * randomness(key) % key.nsquare


def to_bytes(ciphertexts: Sequence[Any], key: PublicKey) -> bytes:
    return b"".join(int(c).to_bytes(key.width, "big") for c in ciphertexts)


# --- fixed point and packing (§5, §6) -----------------------------------------------------------


def encode(x: float, scale: int) -> int:
    """``round_half_even(x * 2^scale)``, exactly (§5)."""
    if not math.isfinite(x):
        raise MemberError(INTERNAL, f"cannot encode {x}")
    return round(math.ldexp(x, scale))


@dataclass(frozen=True)
class Packing:
    value_bits: int
    headroom_bits: int
    n_bits: int

    @property
    def slot_bits(self) -> int:
        return self.value_bits + self.headroom_bits

    @property
    def slots(self) -> int:
        return (self.n_bits - 1) // self.slot_bits

    def groups(self, length: int) -> list[range]:
        return [range(g, min(g + self.slots, length)) for g in range(0, length, self.slots)]

    def offsets(self, used: int) -> int:
        return sum(1 << (self.value_bits - 1 + self.slot_bits * j) for j in range(used))

    def plaintext(self, values: Sequence[int]) -> int:
        """``P_g`` of §6.1 for the values of one group (plaintext packing, §6.2)."""
        low, high = -(1 << (self.value_bits - 1)), (1 << (self.value_bits - 1)) - 1
        if any(not low <= v <= high for v in values):
            raise MemberError(INTERNAL, f"a value is outside the {self.value_bits}-bit slot range")
        return sum(v << (self.slot_bits * j) for j, v in enumerate(values)) + self.offsets(
            len(values)
        )


def pack_encrypted(values: Sequence[Any], key: PublicKey, packing: Packing) -> list[Any]:
    """Pack ciphertexts of signed values homomorphically and re-randomize (§6.3)."""
    out = []
    for group in packing.groups(len(values)):
        acc = values[group[-1]]
        for i in reversed(group[:-1]):
            acc = gmpy2.powmod(acc, 1 << packing.slot_bits, key.nsquare) * values[i] % key.nsquare
        acc = acc * (1 + packing.offsets(len(group)) * key.n) % key.nsquare
        out.append(acc * randomness(key) % key.nsquare)
    return out


def pack_plain(values: Sequence[int], key: PublicKey, packing: Packing) -> list[Any]:
    """Pack signed integers and encrypt each group with fresh randomness (§6.2)."""
    return [
        encrypt(packing.plaintext([values[i] for i in g]), key) for g in packing.groups(len(values))
    ]


# --- training (§7) ------------------------------------------------------------------------------


def load_rows(path: Path, features: list[str], d: int, label: str = "y") -> tuple[Floats, Floats]:
    """Rows ``(m, d)`` and labels ``(m,)``, columns matched by name (§7.1).

    A plan without feature names (§3.4 allows it) takes the file's other columns in file order.
    """
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise MemberError(CONFIG, f"{path}: empty file")
        header = [h.strip() for h in header]
        features = features or [c for c in header if c not in (label, "id")]
        if len(features) != d:
            raise MemberError(CONFIG, f"{path}: {len(features)} features, the plan has {d}")
        missing = [c for c in (*features, label) if c not in header]
        extra = [c for c in header if c not in (*features, label, "id")]
        if missing or extra or len(set(header)) != len(header):
            raise MemberError(CONFIG, f"{path}: missing {missing}, unexpected {extra} columns")
        where = [header.index(c) for c in features]
        rows, labels = [], []
        for line, record in enumerate(reader, start=2):
            try:
                values = [float(record[i]) for i in where]
                y = float(record[header.index(label)])
                if "id" in header:
                    int(record[header.index("id")])
            except (ValueError, IndexError) as e:
                raise MemberError(CONFIG, f"{path}:{line}: {e}") from None
            if not all(map(math.isfinite, values)) or y not in (0.0, 1.0):
                raise MemberError(CONFIG, f"{path}:{line}: non-finite value or label not 0/1")
            rows.append(values)
            labels.append(y)
    if not 1 <= len(rows) <= MAX_SAMPLES:
        raise MemberError(CONFIG, f"{path}: {len(rows)} rows")
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(features)), np.array(labels)


def learning_rate(plan: Any, step: int) -> float:
    """``lr_t`` of §7.2."""
    lr: float = plan.learning_rate
    if plan.schedule == "inverse":
        return lr / (1 + step)
    if plan.schedule == "invsqrt":
        return lr / math.sqrt(1 + step)
    return lr


def taylor_step(xtx: Floats, xty: Floats, m: int, lr: float, alpha: float) -> tuple[Floats, Floats]:
    """``M_t``, ``b_t`` of §7.3, with the parenthesization shown there."""
    eye = np.eye(xtx.shape[0])
    return eye - lr * ((0.25 * xtx) / m + alpha * eye), ((-lr) * xty) / m


def matvec(k: list[list[int]], b: list[int], model: list[Any], key: PublicKey) -> list[Any]:
    """``u_k = prod_j c_j^K[k][j] * (1 + (B[k] mod n) n) mod n^2`` (§7.3 step 4), entry by entry."""
    n2 = key.nsquare
    inverses = [gmpy2.invert(c, n2) for c in model]
    out = []
    for row, bias in zip(k, b, strict=True):
        acc = (1 + (bias % key.n) * key.n) % n2
        for kj, c, c_inv in zip(row, model, inverses, strict=True):
            if kj:
                acc = acc * gmpy2.powmod(c if kj > 0 else c_inv, abs(kj), n2) % n2
        out.append(acc)
    return out


def moments_scale(expected_workers: int) -> int:
    """``F`` of §7.6: the largest f with ``W (N 2^f (1 + 2^-20) + 1) <= 2^63 - 1``."""
    for f in range(62, -1, -1):
        total = expected_workers * (MAX_SAMPLES * Fraction(2) ** f * (1 + Fraction(1, 2**20)) + 1)
        if total <= 2**63 - 1:
            return f
    raise MemberError(PROTOCOL, f"no moments scale for {expected_workers} members")


def bound_exponent(bound: float) -> int:
    """The smallest integer ``e`` with ``bound <= 2^e``, from the binary exponent (§7.6)."""
    mantissa, exponent = math.frexp(bound)
    return exponent - 1 if mantissa == 0.5 else exponent


def moments_vector(x: Floats, bounds: Sequence[float]) -> list[float]:
    """``[m, sum z_j, sum z_j^2]`` on the raw rows pre-scaled by ``2^-e_j`` (§7.6)."""
    if np.any(np.abs(x) > np.asarray(bounds)):
        raise MemberError(CONFIG, "a value lies beyond the plan's feature bounds")
    z = np.ldexp(x, -np.array([bound_exponent(b) for b in bounds]))
    return [float(x.shape[0]), *z.sum(axis=0).tolist(), *(z * z).sum(axis=0).tolist()]


def check_plan(plan: Any, pb: ModuleType) -> None:
    """The ranges of §3.4, and what this member implements."""
    finite = math.isfinite
    rules = {
        "iterations >= 1": plan.iterations >= 1,
        "learning_rate": finite(plan.learning_rate) and plan.learning_rate > 0,
        "alpha": finite(plan.alpha) and plan.alpha >= 0,
        "init_weight": finite(plan.init_weight),
        "eval_every": plan.eval_every >= 1,
        "min_workers": plan.min_workers >= 2,
        "expected_workers": plan.min_workers <= plan.expected_workers <= 2**plan.headroom_bits,
        "timeouts": all(
            finite(t) and t > 0 for t in (plan.round_timeout_s, plan.first_round_timeout_s)
        ),
        "frac_bits": 8 <= plan.frac_bits <= 48,
        "value_bits": plan.value_bits == 64,
        "headroom_bits": 1 <= plan.headroom_bits <= 20,
        "tolerance": finite(plan.tolerance) and plan.tolerance >= 0,
        "local_epochs": plan.local_epochs >= 1,
        "n_features": plan.n_features >= 1,
        "feature_names": len(plan.feature_names) in (0, plan.n_features),
        "key_bits": plan.key_bits % 8 == 0 and plan.key_bits >= 512,
        "chunk_ciphertexts": 1 <= plan.chunk_ciphertexts <= 4096,
        "seed": plan.seed < 2**63,
        "schedule": plan.schedule in ("constant", "inverse", "invsqrt"),
        "mode": plan.mode in (pb.MODE_ENCRYPTED, pb.MODE_AGGREGATE),
        "weighting": plan.weighting in (pb.WEIGHTING_EQUAL, pb.WEIGHTING_SAMPLES),
        "participation": plan.participation in (pb.PARTICIPATION_ALL, pb.PARTICIPATION_QUORUM),
        "privacy_level": plan.privacy_level
        in (pb.PRIVACY_LEVEL_NONE, pb.PRIVACY_LEVEL_MEMBER, pb.PRIVACY_LEVEL_RECORD),
        "feature_bounds": (
            len(plan.feature_bounds) == plan.n_features
            and all(finite(b) and b > 0 for b in plan.feature_bounds)
            if plan.standardize
            else not plan.feature_bounds
        ),
        "frac_bits <= 28 (encrypted)": plan.mode != pb.MODE_ENCRYPTED or plan.frac_bits <= 28,
    }
    broken = [name for name, ok in rules.items() if not ok]
    if broken:
        raise MemberError(PROTOCOL, f"invalid training plan: {', '.join(broken)}")
    if plan.mode != pb.MODE_ENCRYPTED or plan.privacy_level != pb.PRIVACY_LEVEL_NONE:
        raise MemberError(CONFIG, "this member implements encrypted mode without privacy only")


# --- transport (§9) -----------------------------------------------------------------------------


class Retrier:
    """Exponential backoff with jitter within a retry budget (§9.2)."""

    def __init__(self, member: str, target: str, budget_s: float) -> None:
        self.member, self.target, self.budget_s = member, target, budget_s
        self.last_answer = time.monotonic()

    @staticmethod
    def retryable(error: grpc.RpcError) -> bool:
        code, details = error.code(), (error.details() or "").lower()
        if code == grpc.StatusCode.UNAVAILABLE:
            return not any(w in details for w in ("tls", "ssl", "handshake", "certificate"))
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return "larger than max" not in details
        return code == grpc.StatusCode.DEADLINE_EXCEEDED

    def call(self, what: str, fn: Callable[[], T]) -> T:
        start, attempt = time.monotonic(), 0
        while True:
            try:
                result = fn()
            except grpc.RpcError as e:
                if not self.retryable(e):
                    self.last_answer = time.monotonic()
                    raise
                used = time.monotonic() - max(self.last_answer, start)
                cap = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)
                wait = random.uniform(cap / 2, cap)
                if used + wait > self.budget_s:
                    raise MemberError(PROTOCOL, f"{what}: PS silent past the retry budget") from e
                log(
                    self.member,
                    f"PS at {self.target} not answering ({e.code().name}); retrying in"
                    f" {wait:.1f} s, {used:.0f} s of {self.budget_s:.0f} s used",
                )
                time.sleep(wait)
                attempt += 1
                continue
            self.last_answer = time.monotonic()
            return result


def refusal(what: str, error: grpc.RpcError) -> MemberError:
    """The exit status for a call the PS refused (§9.1)."""
    denied = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
    code = CONFIG if error.code() in denied else PROTOCOL
    return MemberError(code, f"{what} refused: {error.code().name}: {error.details()}")


# --- replay guard (§8.4) ------------------------------------------------------------------------


class ReplayGuard:
    """The durable mark and last upload, per (federation hash, key fingerprint)."""

    def __init__(self, directory: Path, member: str, federation: bytes, key: PublicKey) -> None:
        scope = hashlib.sha256(hashlib.sha256(federation).digest() + key.raw).hexdigest()[:32]
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"replay-{member}-{scope}.json"
        state = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.mark: int = state.get("mark", -1)
        self.upload: tuple[dict[str, int], bytes] | None = (
            (state["header"], base64.b64decode(state["payload"])) if "header" in state else None
        )

    def store(self, header: dict[str, int], payload: bytes) -> None:
        """Write the new mark and its upload durably (write, fsync, rename) before sending."""
        text = json.dumps(
            {
                "mark": header["round"],
                "header": header,
                "payload": base64.b64encode(payload).decode(),
            }
        )
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.mark, self.upload = header["round"], (header, payload)


# --- the member ---------------------------------------------------------------------------------


class Member:
    def __init__(self, args: argparse.Namespace, pb: ModuleType, pb_grpc: ModuleType) -> None:
        self.args, self.pb, self.id = args, pb, args.id
        self.channel = grpc.insecure_channel(
            args.server,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 0),
            ],
        )
        self.stub = pb_grpc.ParameterServerStub(self.channel)
        self.retry = Retrier(self.id, args.server, args.retry_budget)
        self.scaler: tuple[Floats, Floats] | None = None
        self.stats: tuple[Floats, Floats, int] | None = None

    def rpc(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return self.retry.call(what, fn)
        except grpc.RpcError as e:
            raise refusal(what, e) from None

    def run(self) -> int:
        info = self.rpc(
            "GetServerInfo",
            lambda: self.stub.GetServerInfo(self.pb.ServerInfoRequest(), timeout=CALL_TIMEOUT_S),
        )
        if info.protocol_version != PROTOCOL_VERSION:
            raise MemberError(PROTOCOL, f"PS speaks {info.protocol_version!r}")
        if info.federation or info.quote or info.tls_certificate:
            raise MemberError(CONFIG, "PS runs with a federation or TLS; this member is dev only")
        self.plan = plan = info.plan
        check_plan(plan, self.pb)
        self.x, self.y = load_rows(self.args.train_set, list(plan.feature_names), plan.n_features)
        self.key = parse_public_key(info.public_key, plan.key_bits)
        self.packing = Packing(plan.value_bits, plan.headroom_bits, self.key.n_bits)
        self.guard = ReplayGuard(self.args.state_dir, self.id, info.federation, self.key)
        self.run_id = info.run_id
        log(
            self.id,
            f"PS NOT verified (--attestation none); run {info.run_id}, key sha256:"
            f"{self.key.fingerprint[:12]}..., {self.x.shape[0]} rows",
        )
        join = self.pb.JoinRequest(
            worker_id=self.id,
            run_id=info.run_id,
            n_features=plan.n_features,
            n_samples=self.x.shape[0],
            protocol_version=PROTOCOL_VERSION,
        )
        r = self.rpc("Join", lambda: self.stub.Join(join, timeout=CALL_TIMEOUT_S)).round
        while True:
            header, payload = self.rpc("GetModel", functools.partial(self.get_model, r))
            if header.finished:
                return self.finish(header)
            if header.pending:
                continue
            self.answer(header, payload)
            r = header.round + 1

    def get_model(self, r: int) -> tuple[Any, bytes]:
        have = not self.plan.standardize or self.scaler is not None
        request = self.pb.ModelRequest(
            worker_id=self.id, run_id=self.run_id, round=r, have_scaler=have
        )
        stream: Iterator[Any] = self.stub.GetModel(request, timeout=POLL_TIMEOUT_S)
        first = next(stream, None)
        if first is None or first.WhichOneof("part") != "header":
            raise MemberError(PROTOCOL, "GetModel: the stream does not start with a header")
        header = first.header
        limit = (self.plan.n_features + 1) * self.key.width
        if header.payload_bytes > limit:
            raise MemberError(PROTOCOL, f"GetModel: {header.payload_bytes} bytes announced")
        data = b"".join(chunk.data for chunk in stream)
        if len(data) != header.payload_bytes:
            raise MemberError(PROTOCOL, f"GetModel: {len(data)} of {header.payload_bytes} bytes")
        return header, data

    def finish(self, header: Any) -> int:
        codes = {
            self.pb.OUTCOME_COMPLETED: OK,
            self.pb.OUTCOME_PAUSED: PAUSED,
            self.pb.OUTCOME_STOPPED: PAUSED,
            self.pb.OUTCOME_FAILED: FAILED,
        }
        if header.outcome not in codes:
            raise MemberError(PROTOCOL, f"finished with outcome {header.outcome}")
        log(self.id, f"training finished ({self.pb.Outcome.Name(header.outcome)}): {header.reason}")
        return codes[header.outcome]

    def answer(self, header: Any, payload: bytes) -> None:
        """The replay guard of §8.4, then compute, store and send."""
        if header.round < self.guard.mark:
            raise MemberError(
                ROLLBACK, f"asked for round {header.round} below mark {self.guard.mark}"
            )
        if header.round == self.guard.mark:
            if self.guard.upload is None:
                raise MemberError(ROLLBACK, f"asked again for round {header.round}, nothing stored")
            log(self.id, f"round {header.round}: resending the stored upload")
            self.submit(*self.guard.upload)
            return
        if header.HasField("scaler"):
            self.take_scaler(header.scaler)
        d = self.plan.n_features
        if header.kind == self.pb.ROUND_KIND_MOMENTS:
            (values, scale), length = self.moments(header, payload), 1 + 2 * d
        elif header.kind == self.pb.ROUND_KIND_TRAIN:
            values, scale, length = self.train(header, payload), 2 * self.plan.frac_bits, d + 1
        else:
            raise MemberError(PROTOCOL, f"round {header.round}: unknown kind {header.kind}")
        upload = to_bytes(values, self.key)
        fields = {
            "round": header.round,
            "length": length,
            "frac_bits": scale,
            "value_bits": self.plan.value_bits,
            "headroom_bits": self.plan.headroom_bits,
            "n_ciphertexts": len(values),
            "payload_bytes": len(upload),
        }
        self.guard.store(fields, upload)
        self.submit(fields, upload)

    def take_scaler(self, scaler: Any) -> None:
        mean, scale = np.array(scaler.mean), np.array(scaler.scale)
        d = self.plan.n_features
        if (
            len(mean) != d
            or len(scale) != d
            or not np.all(np.isfinite(mean))
            or not np.all(np.isfinite(scale) & (scale > 0))
        ):
            raise MemberError(PROTOCOL, "the PS sent an invalid scaler")
        self.scaler, self.stats = (mean, scale), None

    def moments(self, header: Any, payload: bytes) -> tuple[list[Any], int]:
        scale = moments_scale(self.plan.expected_workers)
        if (
            header.encrypted
            or header.length
            or payload
            or header.frac_bits != scale
            or header.weight != 1.0
        ):
            raise MemberError(PROTOCOL, f"round {header.round}: malformed moments header")
        vector = moments_vector(self.x, list(self.plan.feature_bounds))
        return pack_plain([encode(v, scale) for v in vector], self.key, self.packing), scale

    def train(self, header: Any, payload: bytes) -> list[Any]:
        plan, d1 = self.plan, self.plan.n_features + 1
        if not (
            header.encrypted
            and header.length == d1
            and header.frac_bits == plan.frac_bits
            and 0 < header.weight <= 1
            and header.step < plan.iterations
        ):
            raise MemberError(PROTOCOL, f"round {header.round}: malformed model header")
        model = parse_ciphertexts(payload, self.key, d1)
        if self.stats is None:
            if plan.standardize and self.scaler is None:
                raise MemberError(PROTOCOL, "a training model without a scaler")
            x = self.x if self.scaler is None else (self.x - self.scaler[0]) / self.scaler[1]
            xb = np.hstack([np.ones((x.shape[0], 1)), x])
            self.stats = (xb.T @ xb, xb.T @ (0.5 - self.y), x.shape[0])
        m_t, b_t = taylor_step(*self.stats, learning_rate(plan, header.step), plan.alpha)
        if header.weight != 1.0:
            m_t, b_t = header.weight * m_t, header.weight * b_t
        f = plan.frac_bits
        k = [[encode(v, f) for v in row] for row in m_t.tolist()]
        b = [encode(v, 2 * f) for v in b_t.tolist()]
        return pack_encrypted(matvec(k, b, model, self.key), self.key, self.packing)

    def submit(self, fields: dict[str, int], upload: bytes) -> None:
        """SubmitUpdate with the chunking of §8.5; a retry resends the same bytes."""
        size = self.plan.chunk_ciphertexts * self.key.width
        header = self.pb.UpdateHeader(worker_id=self.id, run_id=self.run_id, **fields)
        chunks = [self.pb.UpdateChunk(header=header)] + [
            self.pb.UpdateChunk(data=upload[i : i + size]) for i in range(0, len(upload), size)
        ]
        timeout = UPLOAD_BASE_S + len(upload) / UPLOAD_RATE
        try:
            self.retry.call(
                "SubmitUpdate", lambda: self.stub.SubmitUpdate(iter(chunks), timeout=timeout)
            )
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.ABORTED:
                raise refusal("SubmitUpdate", e) from None
            log(self.id, f"round {fields['round']}: update not taken ({e.details()})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-set", type=Path, required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--state-dir", type=Path, default=Path(".homolr-interop"))
    parser.add_argument("--retry-budget", type=float, default=120.0)
    parser.add_argument("--proto", type=Path, default=DEFAULT_PROTO)
    args = parser.parse_args(argv)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        sys.exit(143)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with tempfile.TemporaryDirectory(prefix="homolr-interop-") as out:
            member = Member(args, *compile_proto(args.proto, Path(out)))
            return member.run()
    except MemberError as e:
        log(args.id, f"error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
