"""Keep docs/protocol.md honest where it can be checked mechanically.

The protocol document is what a third party implements a member from, so a constant, a status
mapping or a test vector that drifts from the code is a wire incompatibility. These tests read the
document's machine-readable tables (section 11 "Constants", section 12 "Test vectors", the
ExitCode, Outcome and status-code tables) and compare every entry with the code, and require every
RPC, message, enum value and field of the .proto to be named in the document.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import importlib
import inspect
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor

from homolr.cli import build_parser
from homolr.crypto import EncryptedVector, PackingSpec, generate_keypair, matvec, pack
from homolr.crypto._public import PublicKey
from homolr.crypto._slots import pack_ints, unpack_ints
from homolr.crypto.encoding import to_fixed_point
from homolr.crypto.keys import PrivateKey
from homolr.enclave.binding import report_data_for_federation
from homolr.enclave.keyholder import KeyHolder, ParticipationRule
from homolr.errors import ExitCode, HomolrError
from homolr.federation.plan import _round_up
from homolr.learning import (
    Dataset,
    add_bias,
    learning_rate,
    linear_update,
    scaling,
    sufficient_stats,
)
from homolr.privacy import calibrate_noise_multiplier, clip_rows, clip_update, keyed_source
from homolr.protocol import homolr_pb2 as pb
from homolr.protocol.messages import MAX_SAMPLES, ModelHeader, Outcome, TrainingPlan
from homolr.server.app import max_concurrent_rpcs, plan_for, server_options
from homolr.server.servicer import _STATUS
from homolr.worker.loop import outcome_error
from homolr.worker.transport import (
    RETRYABLE,
    Connection,
    backoff_delays,
    channel_options,
)

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "protocol.md"
PROTO = REPO / "proto" / "homolr" / "v2" / "homolr.proto"
_SEPARATOR = re.compile(r"\|(\s*:?-+:?\s*\|)+")


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def private_key() -> PrivateKey:
    """The private key of a real (512-bit, test-only) key pair, for the vectors that go through
    the crypto."""
    return generate_keypair(512, insecure_small_key=True)[1]


# ------------------------------------------------------------------------------ doc parsing


def _section(doc: str, title: str) -> list[str]:
    """The lines of the ``## `` section whose heading contains ``title``."""
    lines = doc.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("## ") and title in line]
    assert len(starts) == 1, f"docs/protocol.md needs exactly one '## ... {title}' heading"
    body: list[str] = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("## "):
            break
        body.append(line)
    return body


def _table_rows(lines: list[str]) -> list[list[str]]:
    """Cells of every table body row in ``lines`` (header and separator rows, and anything inside
    fenced code blocks, skipped)."""
    rows: list[list[str]] = []
    fenced = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced
        if fenced or not stripped.startswith("|"):
            continue
        if _SEPARATOR.fullmatch(stripped):
            rows.pop()  # the row above a separator is the table's header
            continue
        rows.append([cell.strip() for cell in stripped.strip("|").split("|")])
    return rows


def _unquote(cell: str) -> str:
    return cell[1:-1] if len(cell) >= 2 and cell[0] == cell[-1] == "`" else cell


def _code_words(doc: str) -> set[str]:
    """Every identifier-like word inside inline code spans and fenced code blocks."""
    fenced = re.findall(r"```.*?```", doc, flags=re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", doc, flags=re.S))
    return {word for text in [*fenced, *inline] for word in re.findall(r"[A-Za-z_]\w*", text)}


# ------------------------------------------------------------------------- .proto coverage


def _messages(descriptor: Descriptor) -> Iterator[Descriptor]:
    yield descriptor
    for nested in descriptor.nested_types:
        yield from _messages(nested)


def _enums() -> Iterator[EnumDescriptor]:
    yield from pb.DESCRIPTOR.enum_types_by_name.values()
    for message in pb.DESCRIPTOR.message_types_by_name.values():
        for inner in _messages(message):
            yield from inner.enum_types


def test_every_rpc_message_field_and_enum_value_of_the_proto_is_named_in_the_doc(
    doc: str,
) -> None:
    proto = PROTO.read_text(encoding="utf-8")
    words = _code_words(doc)
    missing: list[str] = []
    service = pb.DESCRIPTOR.services_by_name["ParameterServer"]
    assert f"service {service.name} {{" in proto
    for method in service.methods:
        assert f"rpc {method.name}(" in proto, f"stubs are stale: rpc {method.name}"
        if method.name not in words:
            missing.append(f"rpc {method.name}")
    for top in pb.DESCRIPTOR.message_types_by_name.values():
        for message in _messages(top):
            assert f"message {message.name} {{" in proto, f"stubs are stale: {message.name}"
            if message.name not in words:
                missing.append(f"message {message.name}")
            for field in message.fields:
                assert re.search(rf"\b{field.name}\s*=\s*{field.number};", proto), (
                    f"stubs are stale: {message.name}.{field.name} = {field.number}"
                )
                if field.name not in words:
                    missing.append(f"field {message.name}.{field.name}")
    for enum in _enums():
        if enum.name not in words:
            missing.append(f"enum {enum.name}")
        for value in enum.values:
            if value.number != 0 and value.name not in words:
                missing.append(f"enum value {value.name}")
    assert not missing, f"docs/protocol.md does not name (in code spans): {', '.join(missing)}"


def _plan_mapping_rows(doc: str) -> list[list[str]]:
    """Rows of section 3.3's table "| `TrainingPlan` field | value |"."""
    lines = doc.splitlines()
    start = lines.index("| `TrainingPlan` field | value |")
    rows: list[list[str]] = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_the_plan_derivation_table_names_exactly_the_plans_fields(doc: str) -> None:
    named = {name for cells in _plan_mapping_rows(doc) for name in re.findall(r"`(\w+)`", cells[0])}
    fields = {field.name for field in pb.TrainingPlan.DESCRIPTOR.fields}
    assert named == fields, (
        f"section 3.3 names {sorted(named - fields)} that are no plan fields and misses "
        f"{sorted(fields - named)}"
    )


def test_reserved_plan_field_numbers_are_stated_as_reserved(doc: str) -> None:
    file = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    [plan] = [m for m in file.message_type if m.name == "TrainingPlan"]
    reserved = [n for r in plan.reserved_range for n in range(r.start, r.end)]
    assert reserved, "the .proto reserves a TrainingPlan field number; the test expects one"
    for number in reserved:
        assert f"Field number {number} of `TrainingPlan` is reserved" in doc


def test_the_doc_names_the_service_by_its_wire_name(doc: str) -> None:
    service = pb.DESCRIPTOR.services_by_name["ParameterServer"]
    assert f"`{service.full_name}`" in doc
    for method in service.methods:
        assert method.name in doc


# ------------------------------------------------------------------- exit statuses, outcomes


def test_every_exit_code_is_in_the_doc_table_with_its_value(doc: str) -> None:
    for code in ExitCode:
        pattern = rf"^\|\s*{code.value}\s*\|\s*`{code.name}`\s*\|"
        assert re.search(pattern, doc, flags=re.M), f"no row '| {code.value} | `{code.name}` |'"


def test_outcome_table_states_the_exit_status_homolr_workers_use(doc: str) -> None:
    outcomes: dict[str, Outcome] = {
        "OUTCOME_COMPLETED": "completed",
        "OUTCOME_PAUSED": "paused",
        "OUTCOME_STOPPED": "stopped",
        "OUTCOME_FAILED": "failed",
    }
    rows = {
        _unquote(cells[0]): cells[2]
        for cells in _table_rows(_section(doc, "round state machine"))
        if _unquote(cells[0]).startswith("OUTCOME_")
    }
    assert set(rows) == set(outcomes)
    for name, outcome in outcomes.items():
        error = outcome_error(ModelHeader(round=0, finished=True, outcome=outcome))
        status = ExitCode.OK if error is None else error.exit_code
        assert rows[name].startswith(f"{int(status)} (`{ExitCode(status).name}`)"), name


# -------------------------------------------------------------------------------- statuses


def _details_for(status_cell: str) -> str:
    """A status message of the kind the row's status cell describes."""
    if "TLS" in status_cell:
        return "failed to connect: SSL handshake failed"
    if "larger than max" in status_cell:
        return "Received message larger than max (6000000 vs. 5242880)"
    return "refused"


def test_status_table_matches_what_the_worker_retries_and_how_it_stops(doc: str) -> None:
    """Every "retries" / "stops (exit N)" claim is checked against the worker's own classification
    of that status (and message) in :class:`~homolr.worker.transport.Connection`."""
    rows = _table_rows(_section(doc, "Status codes"))
    assert rows
    codes_in_doc: set[grpc.StatusCode] = set()
    checked = 0
    with Connection("localhost:9") as connection:  # no call is made: lazy channel
        for rpc, status, _meaning, action in rows:
            code = grpc.StatusCode[_unquote(status.split()[0])]
            codes_in_doc.add(code)
            stop = re.match(r"stops \(exit (\d+)\)", action)
            if not (stop or action.startswith("retries")):
                assert code not in RETRYABLE, f"{rpc} {status}: say whether the worker retries"
                continue
            checked += 1
            try:
                connection._raise_unless_retryable(rpc, code, _details_for(status))
            except HomolrError as exc:
                assert stop, f"{rpc} {status}: documented as retried, the worker stops ({exc})"
                assert int(exc.exit_code) == int(stop.group(1)), (rpc, status, exc.exit_code)
            else:
                assert not stop, f"{rpc} {status}: documented as stopping, the worker retries"
                assert code in RETRYABLE
    assert checked >= 10
    produced = {code for _, code in _STATUS} | {
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
    assert produced <= codes_in_doc, "a status code the PS sends is not documented"


# ------------------------------------------------------------------------------- constants


def _server_option(name: str) -> int:
    plan = TrainingPlan(n_features=1).validate()
    return dict(server_options(plan, 512))[name]


def _channel_option(name: str) -> int | str:
    return dict(channel_options())[name]


def _toy_2048_key() -> PublicKey:
    return PublicKey(2**2047 + 1, 1)  # layout only: an odd 2048-bit n and hs = 1


DERIVED: dict[str, Callable[[], object]] = {
    "PUBLIC_KEY_BYTES_2048": lambda: len(_toy_2048_key().to_bytes()),
    "CIPHERTEXT_BYTES_2048": lambda: _toy_2048_key().ciphertext_bytes,
    "SLOTS_PER_CIPHERTEXT_2048": lambda: PackingSpec().slots_per_ciphertext(2048),
    "SERVER_RECEIVE_LIMIT_DEFAULT_2048": lambda: _server_option("grpc.max_receive_message_length"),
    "SERVER_SEND_LIMIT": lambda: _server_option("grpc.max_send_message_length"),
    "MAX_CONCURRENT_STREAMS": lambda: _server_option("grpc.max_concurrent_streams"),
    "MIN_PING_INTERVAL_WITHOUT_DATA_MS": lambda: _server_option(
        "grpc.http2.min_ping_interval_without_data_ms"
    ),
    "MAX_PING_STRIKES": lambda: _server_option("grpc.http2.max_ping_strikes"),
    "MAX_CONNECTION_IDLE_MS": lambda: _server_option("grpc.max_connection_idle_ms"),
    "MAX_CONCURRENT_RPCS_BASE": lambda: max_concurrent_rpcs(0),
    "MAX_CONCURRENT_RPCS_PER_MEMBER": lambda: max_concurrent_rpcs(1) - max_concurrent_rpcs(0),
    "WORKER_KEEPALIVE_TIME_MS": lambda: _channel_option("grpc.keepalive_time_ms"),
    "WORKER_KEEPALIVE_TIMEOUT_MS": lambda: _channel_option("grpc.keepalive_timeout_ms"),
    "BACKOFF_BASE_S": lambda: inspect.signature(backoff_delays).parameters["base_s"].default,
    "BACKOFF_CAP_S": lambda: inspect.signature(backoff_delays).parameters["cap_s"].default,
    "RETRY_BUDGET_DEFAULT_S": lambda: (
        build_parser()
        .parse_args(["worker", "--train-set", "train.csv", "--id", "alice"])
        .retry_budget
    ),
    "MOMENTS_FLOAT_MARGIN": lambda: float(scaling._FLOAT_MARGIN),
    "NOISE_MULTIPLIER_DIGITS": lambda: inspect.signature(_round_up).parameters["digits"].default,
}


def _resolve(dotted: str) -> object:
    """The object at ``dotted``: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            target = getattr(target, name)
        return target
    raise AssertionError(f"cannot import {dotted}")


def _constant_rows(doc: str) -> list[list[str]]:
    rows = _table_rows(_section(doc, "Constants"))
    assert all(len(cells) == 4 for cells in rows), "constant rows are | name | value | unit | src |"
    return rows


def test_constants_table_matches_the_code(doc: str) -> None:
    wrong: list[str] = []
    for name, value_cell, unit, source_cell in _constant_rows(doc):
        text, source = _unquote(value_cell), _unquote(source_cell)
        documented = text if unit == "regex" else ast.literal_eval(text)
        if source == "derived":
            assert name in DERIVED, f"no derivation for the constant {name}"
            actual = DERIVED[name]()
        else:
            actual = _resolve(source)
        if isinstance(actual, re.Pattern):
            actual = actual.pattern
        if isinstance(actual, ModuleType) or actual != documented or type(actual) is bool:
            wrong.append(f"{name}: doc {documented!r}, code {actual!r}")
    assert not wrong, "docs/protocol.md constants differ from the code: " + "; ".join(wrong)


def test_constants_table_covers_what_a_third_party_needs(doc: str) -> None:
    names = {cells[0] for cells in _constant_rows(doc)}
    needed = {
        "PROTOCOL_VERSION",
        "SERVICE_NAME",
        "WORKER_ID_PATTERN",
        "MAX_SAMPLES",
        "DEFAULT_CHUNK_CIPHERTEXTS",
        "POLL_CAP_S",
        "STREAM_IDLE_S",
        "UPLOAD_BASE_S",
        "UPLOAD_RATE",
        "REPORT_DATA_DOMAIN_V2",
        "SERVER_NAME",
        "VALUE_BITS",
        "HEADROOM_BITS",
        "MAX_ENCRYPTED_FRAC_BITS",
        "CLIP_MARGIN",
        "MIN_PING_INTERVAL_WITHOUT_DATA_MS",
    }
    assert needed <= names, f"missing constants: {sorted(needed - names)}"
    assert set(DERIVED) <= names, f"derivations without a row: {sorted(set(DERIVED) - names)}"


# ----------------------------------------------------------------------------- test vectors


@pytest.fixture(scope="module")
def vectors(doc: str) -> dict[str, str]:
    return {cells[0]: _unquote(cells[1]) for cells in _table_rows(_section(doc, "Test vectors"))}


def _vector(vectors: dict[str, str], prefix: str) -> str:
    matches = [value for key, value in vectors.items() if key.startswith(prefix)]
    assert len(matches) == 1, f"expected one test vector starting {prefix!r}"
    return matches[0]


def _encrypted_step_example(private_key: PrivateKey) -> tuple[list[int], int, list[int]]:
    """Section 7.3's example through homolr's own code, with a real (512-bit) key: the decrypted
    step, the decrypted packed plaintext, and the unpacked sum of two such uploads."""
    public_key = private_key.public_key
    f = 8
    stats = sufficient_stats(add_bias(np.array([[1.0], [-0.5]])), np.array([1, 0]))
    M, b = linear_update(stats, learning_rate("constant", 0.5, 0), 0.01)
    model = EncryptedVector.encrypt(public_key, np.array([0.25, -0.5]), frac_bits=f)
    step = matvec(M, model, frac_bits=f) + b
    n = int(public_key.n)
    signed = [
        v if v <= n // 2 else v - n
        for v in map(int, private_key.raw_decrypt_many(step.ciphertexts))
    ]
    packed = pack(step, PackingSpec())
    plaintext = int(private_key.raw_decrypt(packed.ciphertexts[0]))
    summed = unpack_ints([2 * plaintext], 2, PackingSpec(), 2, public_key.n_bits)
    return signed, plaintext, summed


def test_test_vectors_are_what_the_code_computes(
    vectors: dict[str, str], private_key: PrivateKey
) -> None:
    pk, spki, fed_hash = bytes([1, 2, 3]), bytes([4, 5]), bytes(range(32))
    assert (
        _vector(vectors, "report data v2") == report_data_for_federation(pk, spki, fed_hash).hex()
    )
    assert _vector(vectors, "public key bytes") == PublicKey(187, 23447).to_bytes().hex()
    assert int(_vector(vectors, "fixed point of `-0.15625`")) == to_fixed_point(-0.15625, 4)[0]
    assert int(_vector(vectors, "fixed point of `0.09375`")) == to_fixed_point(0.09375, 4)[0]
    signed, plaintext, summed = _encrypted_step_example(private_key)
    assert ast.literal_eval(_vector(vectors, "encrypted step")) == signed
    assert int(_vector(vectors, "packed plaintext"), 16) == plaintext
    assert pack_ints(signed, PackingSpec(), 512) == [plaintext]
    assert ast.literal_eval(_vector(vectors, "unpacked sum")) == summed
    seed = int.from_bytes(hashlib.sha256(b"alice").digest()[:8], "big")
    assert int(_vector(vectors, "`member_seed`")) == seed
    permutation = np.random.default_rng([0, 0, seed]).permutation(10).tolist()
    assert ast.literal_eval(_vector(vectors, "first permutation")) == permutation
    _check_standardization_vectors(vectors)
    _check_privacy_vectors(vectors, private_key)
    assert len(vectors) == 18, "a test vector was added without a check here"


def _check_standardization_vectors(vectors: dict[str, str]) -> None:
    """Section 7.6's example through the plan's own moments encoding and the PS's plan_for."""
    plan = TrainingPlan(n_features=2, standardize=True, feature_bounds=(4300.0, 0.5)).validate()
    moments = plan.moments_plan
    exponents = ast.literal_eval(_vector(vectors, "moments pre-scaling exponents"))
    assert list(moments.exponents) == exponents
    # the doc's formula, independently: the smallest e with bound <= 2**e
    assert [min(e for e in range(-60, 60) if b <= 2.0**e) for b in (4300.0, 0.5)] == exponents
    upload = moments.member_vector(np.array([[1000.0, 0.25], [-3000.0, -0.5]]))
    encoded = to_fixed_point(upload, moments.frac_bits)
    assert moments.frac_bits == 32
    assert ast.literal_eval(_vector(vectors, "moments upload of rows")) == encoded
    scaler = moments.scaler(2 * upload, contributions=2)
    documented = ast.literal_eval(_vector(vectors, "scaler from the sum"))
    assert documented == {"mean": scaler.mean.tolist(), "scale": scaler.scale.tolist()}
    column = np.array([[3.1], [-0.5], [2.0]])
    validation = Dataset(column, np.array([0, 1, 1]), None, ("x",), "validate.csv")
    derived = plan_for(TrainingPlan(standardize=True, n_features=1), validation)
    assert derived.feature_bounds == (float(_vector(vectors, "development bound")),)


def _check_privacy_vectors(vectors: dict[str, str], private_key: PrivateKey) -> None:
    """Clipping, the multiplier's rounding and the noise label of section 7.7 / 3.3."""
    rows = clip_rows(np.array([[3.0, 4.0]]), 2.5)
    assert ast.literal_eval(_vector(vectors, "`clip_rows`")) == rows[0].tolist()
    update, _ = clip_update(np.array([3.0, 4.0]), 1.0, frac_bits=8)
    assert ast.literal_eval(_vector(vectors, "`clip_update`")) == update.tolist()
    calibrated = _round_up(calibrate_noise_multiplier(1.0, 1e-5, 400))
    assert float(_vector(vectors, "`dp_noise_multiplier` calibrated")) == calibrated
    assert float(_vector(vectors, "`dp_noise_multiplier` rounding")) == _round_up(1.10000000000033)
    assert _round_up(2.0) == 2.0  # an exact 12-digit value stays itself
    label = _vector(vectors, "noise label").encode("ascii")
    holder = KeyHolder(private_key, ParticipationRule("all", frozenset({"alice", "bob"}), 2))
    secret = hashlib.sha256(
        b"homolr/dp-noise-key/v1\x00"
        + int(private_key.p).to_bytes(512, "big")
        + int(private_key.q).to_bytes(512, "big")
    ).digest()
    seed = hmac.new(secret, label, hashlib.sha256).digest()
    source = holder.noise_source(3, 2, frozenset({"bob", "alice"}))
    for i in (1, 2):  # section 7.7: read i is SHAKE-256(seed || u64be(i))
        expected = hashlib.shake_256(seed + i.to_bytes(8, "big")).digest(40)
        assert source(40) == expected
    first_read = hashlib.shake_256(seed + (1).to_bytes(8, "big")).digest(40)
    assert keyed_source(secret, label)(40) == first_read


def _round_up_as_documented(z: float) -> float:
    """Section 3.3's rule, written from the document: exact decimal, 12 digits, toward +inf."""
    from fractions import Fraction

    exact = Fraction(z)
    k = math.floor(math.log10(z)) - 11
    step = Fraction(10) ** k
    rounded = math.ceil(exact / step) * step
    return float(rounded)


@pytest.mark.parametrize("z", [37.30631635459437, 1.10000000000033, 3.70000000000111, 1e-3, 9.87e6])
def test_the_documented_rounding_formula_is_the_codes(z: float) -> None:
    assert _round_up_as_documented(z) == _round_up(z)


def _moments_table(doc: str) -> list[tuple[int, int, int]]:
    """Section 7.6's table: (first, last, F) per row."""
    lines = doc.splitlines()
    start = lines.index("| `expected_workers` | `F` |")
    table: list[tuple[int, int, int]] = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        workers, frac_bits = (cell.strip() for cell in line.strip().strip("|").split("|"))
        first, _, last = workers.partition(" ..= ")
        table.append((int(first), int(last or first), int(frac_bits)))
    return table


def test_moments_scale_table_is_what_the_plan_derives_for_every_member_count(doc: str) -> None:
    table = _moments_table(doc)
    covered = [m for first, last, _ in table for m in range(first, last + 1)]
    assert covered == list(range(2, 2**10 + 1)), "the table must cover 2 ..= 1024 members once"
    for first, last, frac_bits in table:
        for members in range(first, last + 1):
            plan = TrainingPlan(
                n_features=1,
                standardize=True,
                feature_bounds=(1.0,),
                min_workers=2,
                expected_workers=members,
            ).validate()
            assert plan.moments_plan.frac_bits == frac_bits, members
        for members in (first, last):  # the doc's bound: F fits, F + 1 does not
            assert _fits(frac_bits, members) and not _fits(frac_bits + 1, members), members


def _fits(frac_bits: int, members: int) -> bool:
    """Section 7.6's bound ``W (N 2^f (1 + 2^-20) + 1) <= 2^63 - 1``, times 2^20, in integers."""
    total = members * (MAX_SAMPLES * 2**frac_bits * (2**20 + 1) + 2**20)
    return bool(total <= (2**63 - 1) * 2**20)


def test_toy_key_of_the_doc_is_the_djn_base_it_claims(doc: str) -> None:
    n, x = 11 * 17, 2
    hs = pow(-x * x % n, n, n * n)
    assert hs == 23447
    assert "`n = 187 = 11 * 17`, `x = 2`, `h = -4 mod 187 = 183`" in doc
    assert f"`hs = 183^187 mod 34969 = {hs} = 0x{hs:04X}`" in doc
