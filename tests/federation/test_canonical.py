"""Canonical form and hash: same meaning -> same bytes; any change of meaning -> other bytes."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import textwrap
from typing import Any

import pytest

from homolr.enclave.identity import MemberIdentity, generate_member_identity
from homolr.errors import ProtocolError
from homolr.federation import (
    MAX_FEDERATION_BYTES,
    Federation,
    canonical_bytes,
    federation_from_canonical,
    federation_hash,
    federation_hash_hex,
    parse_federation,
    plan_defaults,
)
from homolr.federation.schema import DEADLINE_DEFAULTS, PARTICIPATION_DEFAULTS
from tests.federation.support import (
    RECORD,
    SOURCE,
    Document,
    Identities,
    parse,
    to_toml,
    with_changes,
)

PS = "the PS at 127.0.0.1:50051"


def _member_json(member_id: str, identity: MemberIdentity) -> str:
    certificate = identity.certificate_pem.decode().replace("\n", "\\n")
    return (
        f'{{"certificate":"{certificate}","fingerprint":"{identity.fingerprint}",'
        f'"id":"{member_id}"}}'
    )


def test_canonical_bytes_are_exactly_the_documented_json(
    identities: Identities, document: Document
) -> None:
    # Written out by hand: sorted keys, no spaces, 300.0 -> 300, min_workers = n, privacy null.
    expected = (
        '{"deadlines":{"first_round_s":300,"join_s":300,"round_s":60},'
        '"members":['
        + _member_json("guest", identities["guest"])
        + ","
        + _member_json("host", identities["host"])
        + "],"
        '"name":"wisconsin",'
        '"participation":{"accept_subset_leakage":false,"accept_two_member_leakage":false,'
        '"min_workers":2,"policy":"all"},'
        '"plan":{"alpha":0.01,"batch_size":64,"eval_every":10,"frac_bits":24,"init_weight":0,'
        '"iterations":400,"key_bits":2048,"learning_rate":0.3,"local_epochs":2,'
        '"mode":"encrypted","schedule":"constant","seed":0,"standardize":false,"tolerance":0,'
        '"weighting":"equal"},'
        '"privacy":null,'
        '"validation":{"bounds":[],"features":["x0","x1"],"label":"y","sha256":""},'
        '"version":1}'
    ).encode()
    federation = parse(document)
    assert canonical_bytes(federation) == expected
    assert federation_hash(federation) == hashlib.sha256(expected).digest()
    assert federation_hash_hex(federation) == hashlib.sha256(expected).hexdigest()
    assert len(federation_hash(federation)) == 32


def test_privacy_table_in_canonical_form(document: Document) -> None:
    federation = parse(with_changes(document, privacy=RECORD))
    assert (
        b'"privacy":{"clip":2.5,"delta":0.00001,"epsilon":2,"level":"record","min_samples":200,'
        b'"model_bound":10,"noise_multiplier":null}'
    ) in canonical_bytes(federation)


# --- same meaning, same hash --------------------------------------------------------------------


def _rewrapped(certificate_pem: str, width: int, newline: str) -> str:
    body = "".join(certificate_pem.strip().splitlines()[1:-1])
    lines = textwrap.wrap(body, width)
    return newline.join(
        ["", "-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----", "", ""]
    )


def _all_defaults(document: Document) -> Document:
    return with_changes(
        document,
        plan=dict(plan_defaults("encrypted")),
        participation={**PARTICIPATION_DEFAULTS, "min_workers": 2},
        deadlines=dict(DEADLINE_DEFAULTS),
        validation={"label": "y", "sha256": ""},
    )


def _reversed(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reversed(value[key]) for key in reversed(list(value))}
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return [_reversed(item) for item in value]
    return value


def _with_comments_and_spacing(text: str) -> str:
    """Comments and odd spacing everywhere except inside multi-line strings (the PEM)."""
    lines = ["# federation of the Wisconsin study", ""]
    in_string = False
    for line in text.splitlines():
        if in_string:
            lines.append(line)
            in_string = line != '"""'
        elif line.endswith('"""'):
            lines.append(line.replace(" = ", "\t=  "))
            in_string = True
        elif line.startswith("["):
            lines += ["", "# the next table", "  " + line + "  # trailing comment"]
        elif line:
            lines.append("  " + line.replace(" = ", "   =\t") + "   # what it means")
    return "\n".join(lines) + "\n"


def test_equivalent_files_hash_the_same(document: Document) -> None:
    reference = federation_hash(parse(document))
    commented = _with_comments_and_spacing(to_toml(document))
    members_swapped = copy.deepcopy(document)
    members_swapped["members"].reverse()
    upper = copy.deepcopy(document)
    upper["members"][0]["fingerprint"] = "sha256:" + upper["members"][0]["fingerprint"][7:].upper()
    rewrapped = copy.deepcopy(document)
    for entry in rewrapped["members"]:
        entry["certificate"] = _rewrapped(entry["certificate"], 76, "\r\n")
    integers = with_changes(document, deadlines={"join_s": 300, "round_s": 60})
    literal_strings = to_toml(with_changes(document, plan={"mode": "encrypted"})).replace(
        '"encrypted"', "'encrypted'"
    )
    variants = {
        "comments and blank lines": parse_federation(commented, SOURCE),
        "key order": parse(_reversed(document)),
        "explicit defaults": parse(_all_defaults(document)),
        "member order": parse(members_swapped),
        "fingerprint case": parse(upper),
        "PEM wrapping and CRLF": parse(rewrapped),
        "integers for floats": parse(integers),
        "min_workers under policy all": parse(
            with_changes(document, participation={"min_workers": 2})
        ),
        "TOML literal strings": parse_federation(literal_strings, SOURCE),
    }
    for name, federation in variants.items():
        assert federation_hash(federation) == reference, name


def test_pinned_hash_case_and_aggregate_defaults_do_not_matter(document3: Document) -> None:
    pin = "ab" * 32
    lower = parse(with_changes(document3, validation={"sha256": pin}))
    upper = parse(with_changes(document3, validation={"sha256": pin.upper()}))
    assert federation_hash(lower) == federation_hash(upper)
    implicit = parse(with_changes(document3, plan={"mode": "aggregate"}))
    explicit = parse(with_changes(document3, plan=dict(plan_defaults("aggregate"))))
    assert federation_hash(implicit) == federation_hash(explicit)


# --- any change of meaning, another hash ----------------------------------------------------------


def test_every_change_of_meaning_changes_the_hash(
    identities: Identities, document3: Document
) -> None:
    base = document3
    quorum = {"policy": "quorum", "min_workers": 2, "accept_subset_leakage": True}
    new_key = generate_member_identity("third")
    replaced = copy.deepcopy(base)
    replaced["members"][2]["certificate"] = new_key.certificate_pem.decode()
    replaced["members"][2]["fingerprint"] = new_key.fingerprint
    renamed = copy.deepcopy(base)
    fourth = generate_member_identity("fourth")
    renamed["members"][2] = {
        "id": "fourth",
        "fingerprint": fourth.fingerprint,
        "certificate": fourth.certificate_pem.decode(),
    }
    plan_changes = {
        "mode": "aggregate",
        "key_bits": 3072,
        "iterations": 401,
        "learning_rate": 0.31,
        "schedule": "invsqrt",
        "alpha": 0.02,
        "init_weight": 0.5,
        "eval_every": 5,
        "frac_bits": 25,
        "weighting": "samples",
        "batch_size": 32,
        "local_epochs": 3,
        "tolerance": 1e-6,
        "seed": 1,
    }
    variants: dict[str, Document] = {
        f"plan.{key}": with_changes(base, plan={key: value}) for key, value in plan_changes.items()
    }
    bounds = {"bounds": [10.0, 10.0]}
    variants["plan.standardize"] = with_changes(base, plan={"standardize": True}, validation=bounds)
    variants |= {
        "name": with_changes(base, name="wisconsin2"),
        "policy": with_changes(base, participation=quorum),
        "min_workers": with_changes(base, participation={**quorum, "min_workers": 3}),
        "accept_subset_leakage": with_changes(base, participation={"accept_subset_leakage": True}),
        "accept_two": with_changes(base, participation={"accept_two_member_leakage": True}),
        "join_s": with_changes(base, deadlines={"join_s": 301.0}),
        "round_s": with_changes(base, deadlines={"round_s": 61.0}),
        "first_round_s": with_changes(base, deadlines={"first_round_s": 299.5}),
        "features order": with_changes(base, validation={"features": ["x1", "x0"]}),
        "features added": with_changes(base, validation={"features": ["x0", "x1", "x2"]}),
        "label": with_changes(base, validation={"label": "target"}),
        "sha256": with_changes(base, validation={"sha256": "0" * 64}),
        "bounds": with_changes(base, validation=bounds),
        "bounds changed": with_changes(base, validation={"bounds": [10.0, 11.0]}),
        "privacy": with_changes(base, privacy=RECORD),
        "privacy.epsilon": with_changes(base, privacy={**RECORD, "epsilon": 3.0}),
        "privacy.delta": with_changes(base, privacy={**RECORD, "delta": 1e-6}),
        "privacy.clip": with_changes(base, privacy={**RECORD, "clip": 2.0}),
        "privacy.noise": with_changes(base, privacy={**RECORD, "noise_multiplier": 1.1}),
        "privacy.model_bound": with_changes(base, privacy={**RECORD, "model_bound": 5.0}),
        "privacy.min_samples": with_changes(base, privacy={**RECORD, "min_samples": 100}),
        "member removed": {**base, "members": base["members"][:2]},
        "member key replaced": replaced,
        "member replaced": renamed,
    }
    hashes = {name: federation_hash(parse(variant)) for name, variant in variants.items()}
    hashes["base"] = federation_hash(parse(base))
    assert len(set(hashes.values())) == len(hashes)


# --- reading the canonical bytes back -------------------------------------------------------------


def test_canonical_bytes_read_back_to_the_same_federation(document3: Document) -> None:
    for variant in (
        document3,
        with_changes(document3, privacy=RECORD),
        with_changes(
            document3,
            plan={"mode": "aggregate", "seed": 2**53 - 1, "weighting": "equal"},
            participation={"policy": "quorum", "min_workers": 2},
            privacy={"level": "member", "noise_multiplier": 0.7, "delta": 1e-6, "clip": 0.5},
        ),
    ):
        federation = parse(variant)
        data = canonical_bytes(federation)
        assert federation_from_canonical(data, PS) == federation
        assert isinstance(federation_from_canonical(data, PS), Federation)


def _canonical(document: Document) -> bytes:
    return canonical_bytes(parse(document))


def _replace(data: bytes, old: str, new: str) -> bytes:
    assert old.encode() in data, old
    return data.replace(old.encode(), new.encode(), 1)


@pytest.mark.parametrize(
    ("tamper", "phrase"),
    [
        (lambda data: b"\xff" + data, "not UTF-8 JSON"),
        (lambda data: data[:-1], "not UTF-8 JSON"),
        (lambda _data: b"[]", "not a JSON object"),
        (lambda _data: b'{"version":1,"version":1}', "duplicate key 'version'"),
        (lambda data: _replace(data, '"learning_rate":0.3', '"learning_rate":NaN'), "NaN"),
        (lambda data: json.dumps(json.loads(data), indent=1).encode(), "not in canonical form"),
        (lambda data: _replace(data, '"round_s":60', '"round_s":60.0'), "not in canonical form"),
        (
            lambda data: _replace(data, '"name":"wisconsin"', '"name":"wiscons\\u0069n"'),
            "not in canonical form",
        ),
        (
            lambda data: _replace(
                data, '"deadlines":{"first_round_s":300,"join_s":300,"round_s":60},', ""
            ),
            "not in canonical form",
        ),
        (
            lambda data: _replace(data, '"privacy":null', '"privacy":{}'),
            "privacy.level: required key is missing",
        ),
        (lambda data: _replace(data, '"name":', '"extra":1,"name":'), "unknown key extra"),
        (
            lambda data: _replace(data, '"min_workers":3', '"min_workers":1'),
            "participation.min_workers: 1 is out of range",
        ),
        (
            lambda data: _replace(data, '"version":1', '"version":null'),
            "version: required key is missing",
        ),
        (lambda data: _replace(data, '"seed":0', f'"seed":{2**63}'), "plan.seed"),
        (lambda _data: b" " * (MAX_FEDERATION_BYTES + 1), "exceeds"),
        (lambda _data: b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    ],
)
def test_tampered_or_non_canonical_bytes_are_refused(
    document3: Document, tamper: Any, phrase: str
) -> None:
    data = tamper(_canonical(document3))
    with pytest.raises(ProtocolError) as info:
        federation_from_canonical(data, PS)
    assert str(info.value).startswith(PS), str(info.value)
    assert phrase in str(info.value), str(info.value)


def test_a_certificate_in_other_pem_wrapping_is_not_canonical(document3: Document) -> None:
    data = _canonical(document3)
    parsed = json.loads(data)
    pem = parsed["members"][0]["certificate"]
    body = base64.b64encode(base64.b64decode("".join(pem.splitlines()[1:-1]))).decode()
    rewrapped = "-----BEGIN CERTIFICATE-----\n" + body + "\n-----END CERTIFICATE-----\n"
    assert rewrapped != pem
    tampered = data.replace(json.dumps(pem).encode(), json.dumps(rewrapped).encode())
    with pytest.raises(ProtocolError, match="not in canonical form"):
        federation_from_canonical(tampered, PS)
