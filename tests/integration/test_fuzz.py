"""Fuzz a real PS during a legitimate run: garbage and one-bad-field messages on every RPC.

The fuzzer builds its messages at the protobuf wire level (so that it can send what no protobuf
library would serialise: wrong wire types, overlong varints, invalid UTF-8, truncated lengths) and
sends them through a generic channel with identity serializers. Its seed is fixed, so a failure
replays. While it runs, the two reference members train; the run must end exactly as the clean run
did, the PS must answer every call within its deadline, never crash or log a traceback, and its
memory must stay within 20 MB.

The fuzzer never impersonates a member with a message that could be valid: in --insecure mode ids
are not authenticated, so a well-formed update under a member's id would (by design) be folded.
Messages under a member's id are always refused before any state changes (wrong run, a field that
contradicts the plan, data of the wrong size or not a ciphertext); the rest use ids that never
joined. Paths past a valid fold are covered by test_availability (broken uploads) and
test_reliability (malformed submissions from a joined member).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from homolr.crypto import PublicKey
from homolr.protocol.messages import PROTOCOL_VERSION
from tests.integration.attack import (
    GET_MODEL,
    GET_SERVER_INFO,
    JOIN,
    REFERENCE_ITERS,
    SUBMIT_UPDATE,
    RunResult,
    channel_options,
    model_weights,
    reference_plan,
    server_info,
    steps_done,
    vm_rss_kib,
)
from tests.integration.harness import Cluster, reference_files, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 20261203
MIN_MESSAGES = 10_000
THREADS = 12
CHANNELS = 6
#: Client deadlines: unary calls; GetModel (a poll may wait up to the PS's 10 s cap); updates.
DEADLINES = {"GetServerInfo": 5.0, "Join": 5.0, "GetModel": 15.0, "SubmitUpdate": 15.0}
#: What the PS may answer a malformed message (bytes that do not parse: INVALID_ARGUMENT naming
#: the message type, never UNKNOWN with an exception class).
EXPECTED_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
PARSE_ERROR = "is not a well-formed homolr.v2."
#: Refusals that only a header for the open round, from a member that still owes it, reaches.
DEEP_CHECKS = {
    "bytes that are no message": PARSE_ERROR,
    "header against the plan": "the plan requires",
    "stream shape": "must be data message",
    "data message size or ciphertext": ", data message 1:",
}

# ------------------------------------------------------------------------- protobuf wire format

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5


def varint(value: int) -> bytes:
    """Base-128 varint; a negative value is sent as its 64-bit two's complement (10 bytes)."""
    value &= (1 << 64) - 1 if value < 0 else (1 << 80) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    return tag(number, LEN) + varint(len(payload)) + payload


@dataclass(frozen=True)
class Field:
    number: int
    name: str
    kind: str  # "string", "uint32", "uint64", "bool", "message", "bytes"


def encode_value(f: Field, value: object) -> bytes:
    if f.kind == "string":
        assert isinstance(value, str)
        return length_delimited(f.number, value.encode())
    if f.kind == "message":
        assert isinstance(value, bytes)
        return length_delimited(f.number, value)
    assert isinstance(value, int)
    return tag(f.number, VARINT) + varint(value)


def encode(
    fields: tuple[Field, ...], values: dict[str, object], bad: tuple[str, bytes] | None
) -> bytes:
    """A message of ``values``; ``bad`` replaces one field's whole encoding with raw bytes."""
    parts = []
    for f in fields:
        if bad is not None and bad[0] == f.name:
            parts.append(bad[1])
        else:
            parts.append(encode_value(f, values[f.name]))
    return b"".join(parts)


JOIN_FIELDS = (
    Field(1, "worker_id", "string"),
    Field(2, "run_id", "string"),
    Field(3, "n_features", "uint32"),
    Field(4, "n_samples", "uint64"),
    Field(5, "protocol_version", "string"),
)
MODEL_FIELDS = (
    Field(1, "worker_id", "string"),
    Field(2, "run_id", "string"),
    Field(3, "round", "uint32"),
    Field(4, "have_scaler", "bool"),
)
CHUNK_FIELDS = (Field(1, "header", "message"), Field(2, "data", "bytes"))
HEADER_FIELDS = (
    Field(1, "worker_id", "string"),
    Field(2, "run_id", "string"),
    Field(3, "round", "uint32"),
    Field(4, "length", "uint32"),
    Field(5, "frac_bits", "uint32"),
    Field(6, "value_bits", "uint32"),
    Field(7, "headroom_bits", "uint32"),
    Field(8, "n_ciphertexts", "uint32"),
    Field(9, "payload_bytes", "uint64"),
)


def wire_mutations(f: Field, rng: random.Random) -> list[bytes]:
    """Encodings no valid sender produces, for any field: wrong wire types, a length past the end,
    an overlong varint, an unknown field number, a group."""
    n = f.number
    return [
        tag(n, VARINT) + varint(rng.getrandbits(64)),  # an int where a string is, or any int
        tag(n, LEN) + varint(1000) + b"short",  # length beyond the message
        tag(n, I32) + rng.randbytes(4),
        tag(n, I64) + rng.randbytes(8),
        tag(n, SGROUP) + tag(n, EGROUP),
        tag(n, VARINT) + b"\xff" * 11,  # varint longer than 10 bytes
        tag(n, 7) + b"\x00",  # wire type 7 does not exist
        length_delimited(n + 100, rng.randbytes(8)),  # unknown field instead of this one
        b"",  # the field is absent (its default value)
    ]


def value_mutations(f: Field, rng: random.Random, avoid: set[str]) -> list[bytes]:
    """Wrong values of the right wire type (never one of ``avoid``, e.g. real member ids)."""
    n = f.number
    if f.kind == "string":
        strings = [
            "",
            "x" * 65,
            "x" * 100_000,
            "\u00e9t\u00e9",
            "guest\n",
            "../../etc/passwd",
            "\x00",
            " " + rng.choice(["a", "b"]),
            "f" * 32,
            "A" * 64 + "\u2603",
        ]
        encoded = [length_delimited(n, s.encode()) for s in strings if s not in avoid]
        encoded.append(length_delimited(n, b"\xff\xfe\xc0"))  # not UTF-8
        encoded.append(length_delimited(n, b"x" * 2_000_000))  # beyond the message limit
        return encoded
    ints = [0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1, -1, 2**70]
    if f.kind == "bool":
        ints = [2, 255, 2**32, -1]
    return [tag(n, VARINT) + varint(v) for v in ints]


# ------------------------------------------------------------------------------------ the cases


@dataclass(frozen=True)
class Case:
    rpc: str  # GetServerInfo | Join | GetModel | SubmitUpdate
    what: str
    messages: tuple[bytes, ...]


@dataclass
class Plan:
    """What the fuzzer knows about the run (from ServerInfo and the PS's log)."""

    run_id: str
    public_key: PublicKey
    members: frozenset[str]
    current_round: Callable[[], int]
    n_ciphertexts: int = 2
    length: int = 31

    @property
    def width(self) -> int:
        return self.public_key.ciphertext_bytes


def garbage_cases(rng: random.Random) -> Iterator[Case]:
    sizes = [0, 1, 2, 7, 64, 300, 4096]
    for rpc in DEADLINES:
        size = rng.choice(sizes) if rng.random() < 0.97 else rng.choice([70_000, 300_000])
        count = rng.randint(1, 4) if rpc == "SubmitUpdate" else 1
        yield Case(rpc, f"garbage {size} B", tuple(rng.randbytes(size) for _ in range(count)))


def update_chunk_header(header: bytes) -> bytes:
    return length_delimited(1, header)


def update_chunk_data(data: bytes) -> bytes:
    return length_delimited(2, data)


def bad_data_chunks(plan: Plan, rng: random.Random) -> list[tuple[str, bytes]]:
    """Data messages no member sends, that the PS refuses before folding anything."""
    width, count = plan.width, plan.n_ciphertexts
    n = plan.public_key.n
    size = width * count
    return [
        ("truncated data", rng.randbytes(size - 1)),
        ("one ciphertext short", rng.randbytes(size - width)),
        ("one byte over", rng.randbytes(size + 1)),
        ("one ciphertext over", rng.randbytes(size + width)),
        ("zero ciphertexts", bytes(size)),
        ("ciphertext n", n.to_bytes(width, "big") * count),
        ("ciphertext n^2", (n * n).to_bytes(width, "big") * count),
        ("all ones", b"\xff" * size),
        ("empty data", b""),
    ]


def header_values(plan: Plan, worker_id: str, round_: int) -> dict[str, object]:
    return {
        "worker_id": worker_id,
        "run_id": plan.run_id,
        "round": round_,
        "length": plan.length,
        "frac_bits": 48,
        "value_bits": 64,
        "headroom_bits": 10,
        "n_ciphertexts": plan.n_ciphertexts,
        "payload_bytes": plan.n_ciphertexts * plan.width,
    }


def one_bad_field_cases(plan: Plan, rng: random.Random) -> Iterator[Case]:
    """Every field of every request mutated in turn, from a message that is valid but for the
    caller ('mallory' never joined), and, for update headers, from a member's own header."""
    avoid = set(plan.members)
    join = {
        "worker_id": "mallory",
        "run_id": plan.run_id,
        "n_features": 30,
        "n_samples": 100,
        "protocol_version": PROTOCOL_VERSION,
    }
    for f in JOIN_FIELDS:
        for bad in [*wire_mutations(f, rng), *value_mutations(f, rng, avoid)]:
            yield Case("Join", f"join {f.name}", (encode(JOIN_FIELDS, join, (f.name, bad)),))
    model = {"worker_id": "mallory", "run_id": plan.run_id, "round": 0, "have_scaler": 1}
    for f in MODEL_FIELDS:
        for bad in [*wire_mutations(f, rng), *value_mutations(f, rng, avoid)]:
            yield Case("GetModel", f"model {f.name}", (encode(MODEL_FIELDS, model, (f.name, bad)),))
    run = MODEL_FIELDS[1]
    for member in sorted(plan.members):  # a member's id, never its run
        own = {**model, "worker_id": member, "round": plan.current_round()}
        for bad in [*wire_mutations(run, rng), *value_mutations(run, rng, avoid)]:
            yield Case(
                "GetModel", "member model run_id", (encode(MODEL_FIELDS, own, ("run_id", bad)),)
            )
    good_data = update_chunk_data(rng.randbytes(plan.n_ciphertexts * plan.width))
    for owner in ["mallory", *sorted(plan.members)]:
        for f in HEADER_FIELDS:
            for bad in [*wire_mutations(f, rng), *value_mutations(f, rng, avoid)]:
                values = header_values(plan, owner, plan.current_round())  # read when sent
                header = encode(HEADER_FIELDS, values, (f.name, bad))
                # Under a member's id the data is never a valid update (see the module docstring).
                data = good_data if owner == "mallory" else update_chunk_data(b"\x00" * 7)
                yield Case("SubmitUpdate", f"header {f.name}", (update_chunk_header(header), data))


def stream_cases(plan: Plan, rng: random.Random) -> Iterator[Case]:
    """Update streams of the wrong shape: data first, second headers, extra and bad chunks, a
    header announcing an oversize payload, a oneof set twice."""
    for owner in ["mallory", *sorted(plan.members)]:

        def header(owner: str = owner) -> bytes:  # the open round as the PS last reported it
            values = header_values(plan, owner, plan.current_round())
            return update_chunk_header(encode(HEADER_FIELDS, values, None))

        for what, data in bad_data_chunks(plan, rng):
            yield Case("SubmitUpdate", what, (header(), update_chunk_data(data)))
        yield Case("SubmitUpdate", "header then end", (header(),))
        yield Case("SubmitUpdate", "second header", (header(), header()))
        yield Case("SubmitUpdate", "data first", (update_chunk_data(rng.randbytes(64)), header()))
        yield Case("SubmitUpdate", "empty message", (b"", header()))
        yield Case("SubmitUpdate", "header and data in one", (header() + update_chunk_data(b"xx"),))
        bad = update_chunk_data(b"\x00" * 3)
        yield Case("SubmitUpdate", "bad data then more", (header(), bad, bad, bad))
        yield Case("SubmitUpdate", "truncated header message", (header()[:-3], bad))
        for f in CHUNK_FIELDS:  # the UpdateChunk's own fields with wrong wire types
            for wrong in wire_mutations(f, rng):
                first = wrong if f.name == "header" else header()
                yield Case("SubmitUpdate", f"chunk {f.name}", (first, wrong))
    mallory = header_values(plan, "mallory", plan.current_round())
    full = update_chunk_data(rng.randbytes(plan.n_ciphertexts * plan.width))
    mallory_header = update_chunk_header(encode(HEADER_FIELDS, mallory, None))
    yield Case("SubmitUpdate", "extra chunks", (mallory_header, full, full, full))
    for announced in (2**40, 2**64 - 1, 0):
        huge = {**mallory, "payload_bytes": announced}
        yield Case(
            "SubmitUpdate",
            "oversize announcement",
            (update_chunk_header(encode(HEADER_FIELDS, huge, None)), full),
        )


def all_cases(plan: Plan, rng: random.Random) -> Iterator[Case]:
    """An endless mix: each generation of the mutation corpus, then garbage. The seed fixes the
    corpus; the round numbers in members' headers follow the run."""
    while True:
        yield from one_bad_field_cases(plan, rng)
        yield from stream_cases(plan, rng)
        for _ in range(300):
            yield from garbage_cases(rng)
        yield Case("GetServerInfo", "valid", (b"",))
        yield Case("GetServerInfo", "unknown field", (length_delimited(9, b"x"),))


# ------------------------------------------------------------------------------------ the fuzzer


@dataclass
class Tally:
    messages: int = 0
    calls: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    latency: dict[str, float] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    deep: Counter[str] = field(default_factory=Counter)  # refusals past the header's first checks
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, case: Case, code: grpc.StatusCode, details: str, seconds: float) -> None:
        with self.lock:
            self.messages += len(case.messages)
            self.calls += 1
            self.codes[f"{case.rpc} {code.name}"] += 1
            self.latency[case.rpc] = max(self.latency.get(case.rpc, 0.0), seconds)
            for check, needle in DEEP_CHECKS.items():
                if needle in details:
                    self.deep[check] += 1
            bad = code not in EXPECTED_CODES or "Error parsing" in details or "<class" in details
            if bad or seconds > DEADLINES[case.rpc]:
                self.unexpected.append(
                    f"{case.rpc} {case.what}: {code.name} {details!r} {seconds:.2f} s"
                )


def send(channel: grpc.Channel, case: Case) -> tuple[grpc.StatusCode, str]:
    path = {"GetServerInfo": GET_SERVER_INFO, "Join": JOIN, "GetModel": GET_MODEL}.get(
        case.rpc, SUBMIT_UPDATE
    )
    timeout = DEADLINES[case.rpc]
    try:
        if case.rpc == "SubmitUpdate":
            channel.stream_unary(path, None, None)(iter(case.messages), timeout=timeout)
        elif case.rpc == "GetModel":
            for _ in channel.unary_stream(path, None, None)(case.messages[0], timeout=timeout):
                pass
        else:
            channel.unary_unary(path, None, None)(case.messages[0], timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def fuzz(port: int, plan: Plan, rng: random.Random, min_messages: int) -> Tally:
    tally = Tally()
    channels = [
        grpc.insecure_channel(f"127.0.0.1:{port}", options=channel_options(i))
        for i in range(CHANNELS)
    ]
    cases = all_cases(plan, rng)
    produce = threading.Lock()

    def next_case() -> Case | None:
        with produce:
            return next(cases) if tally.messages < min_messages else None

    def loop(index: int) -> None:
        channel = channels[index % CHANNELS]
        while (case := next_case()) is not None:
            started = time.monotonic()
            code, details = send(channel, case)
            tally.record(case, code, details, time.monotonic() - started)

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            for result in [pool.submit(loop, i) for i in range(THREADS)]:
                result.result(timeout=600)
    finally:
        for channel in channels:
            channel.close()
    return tally


def test_fuzzed_rpcs_during_a_run_crash_nothing_and_change_nothing(
    cluster: Cluster, shared_data: Path, tmp_path: Path, clean_run: RunResult
) -> None:
    guest, host, test = reference_files(shared_data)
    out = tmp_path / "out"
    ps = cluster.start_ps(*reference_plan(test, out))
    workers = [cluster.start_worker("guest", guest), cluster.start_worker("host", host)]
    wait_for(lambda: steps_done(ps.stdout()) >= 1, 120, "the first training step")
    info = server_info(cluster.port)
    plan = Plan(
        info.run_id,
        PublicKey.from_bytes(info.public_key),
        frozenset({"guest", "host"}),
        lambda: steps_done(ps.stdout()),
    )
    before = vm_rss_kib(ps.popen.pid)
    started = time.monotonic()
    tally = fuzz(cluster.port, plan, random.Random(SEED), MIN_MESSAGES)
    seconds = time.monotonic() - started
    step_at_end = steps_done(ps.stdout())
    alive = ps.popen.poll() is None
    after = vm_rss_kib(ps.popen.pid) if alive else -1
    print(
        f"fuzz: {tally.messages} messages in {tally.calls} calls, {seconds:.1f} s; run at step "
        f"{step_at_end} of {REFERENCE_ITERS}; max latency {tally.latency}; VmRSS {before} -> {after} "
        f"KiB; deepest refusals {dict(tally.deep)}; codes {dict(sorted(tally.codes.items()))}"
    )
    assert alive, ps.output()
    assert tally.messages >= MIN_MESSAGES
    assert tally.unexpected == [], "\n".join(tally.unexpected[:20])
    assert step_at_end < REFERENCE_ITERS, "the run ended before the fuzz did: not concurrent"
    assert after - before < 20 * 1024, f"PS RSS grew {after - before} KiB under the fuzz"
    assert ps.wait(300) == 0, ps.output()
    for worker in workers:
        assert worker.wait(60) == 0, worker.output()
    assert "Traceback" not in ps.output() and "Exception" not in ps.output(), ps.output()
    assert model_weights(out / "model.json") == clean_run.weights, "the final model differs"
