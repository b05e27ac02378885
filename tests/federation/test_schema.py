"""Federation schema: every rule refuses a bad input with a message naming file and field."""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from homolr.errors import ConfigError
from homolr.federation import SCHEMA, Federation, parse_federation, plan_defaults
from homolr.federation.certificates import fingerprint_of, load_certificate
from homolr.federation.schema import MODES, WEIGHTINGS, federation_from_document
from homolr.learning import AGGREGATE_DEFAULTS, ENCRYPTED_DEFAULTS
from homolr.protocol import messages
from tests.federation.support import (
    RECORD,
    SOURCE,
    Document,
    Identities,
    base_document,
    make_certificate,
    member_entry,
    parse,
    pem,
    to_toml,
    with_changes,
)

Mutation = Callable[[Document, Identities], Document]


def changes(**sections: Any) -> Mutation:
    return lambda document, _identities: with_changes(document, **sections)


def without(path: str) -> Mutation:
    def mutate(document: Document, _identities: Identities) -> Document:
        changed = copy.deepcopy(document)
        *tables, key = path.split(".")
        target = changed
        for table in tables:
            target = target[table]
        del target[key]
        return changed

    return mutate


def member_field(index: int, **fields: Any) -> Mutation:
    def mutate(document: Document, _identities: Identities) -> Document:
        changed = copy.deepcopy(document)
        changed["members"][index].update(fields)
        return changed

    return mutate


def certificate_for(
    index: int, make: Callable[[str], str], *, fix_fingerprint: bool = True
) -> Mutation:
    """Replace member ``index``'s certificate by ``make(member_id)`` (and its fingerprint)."""

    def mutate(document: Document, _identities: Identities) -> Document:
        changed = copy.deepcopy(document)
        entry = changed["members"][index]
        entry["certificate"] = make(entry["id"])
        if fix_fingerprint:
            with contextlib.suppress(ConfigError):
                entry["fingerprint"] = fingerprint_of(load_certificate(entry["certificate"]))
        return changed

    return mutate


def three_members(mutation: Mutation) -> Mutation:
    def mutate(_document: Document, identities: Identities) -> Document:
        return mutation(base_document(identities), identities)

    return mutate


def without_member_key(index: int, key: str) -> Mutation:
    def mutate(document: Document, _identities: Identities) -> Document:
        changed = copy.deepcopy(document)
        del changed["members"][index][key]
        return changed

    return mutate


def same_key_twice(document: Document, _identities: Identities) -> Document:
    key = ec.generate_private_key(ec.SECP256R1())
    entries = []
    for member_id in ("guest", "host"):
        certificate, _ = make_certificate(member_id, key=key)
        entries.append(
            {
                "id": member_id,
                "fingerprint": fingerprint_of(certificate),
                "certificate": pem(certificate),
            }
        )
    return {**document, "members": entries}


def issued_by_operator_ca(member_id: str) -> str:
    ca_certificate, ca_key = make_certificate("operator CA", ca=True)
    certificate, _ = make_certificate(member_id, signer=ca_key, issuer=ca_certificate.subject)
    return pem(certificate)


QUORUM = {"policy": "quorum", "min_workers": 2}
MEMBER = {"level": "member", "epsilon": 2.0, "delta": 1e-5, "clip": 1.0}

# (test id, mutation of the valid two-member document, field path, phrase of the problem)
CASES: list[tuple[str, Mutation, str, str]] = [
    # unknown keys, anywhere
    ("unknown-top", changes(colour="blue"), "unknown key colour", "version 1"),
    ("unknown-plan", changes(plan={"modee": "aggregate"}), "unknown key plan.modee", "spelling"),
    ("unknown-privacy", changes(privacy={**RECORD, "sigma": 1.0}), "privacy.sigma", "unknown"),
    ("unknown-member", member_field(1, name="x"), "members[1].name", "unknown key"),
    ("unknown-several", changes(plan={"a": 1}, deadlines={"b": 2}), "deadlines.b, plan.a", "keys"),
    # version and name
    ("version-missing", without("version"), "version", "required key is missing"),
    ("version-2", changes(version=2), "version", "unsupported version 2"),
    ("version-string", changes(version="1"), "version", "expected an integer, got string '1'"),
    ("version-bool", changes(version=True), "version", "expected an integer, got boolean true"),
    ("version-float", changes(version=1.0), "version", "expected an integer, got float 1.0"),
    ("name-missing", without("name"), "name", "required key is missing"),
    ("name-dash", changes(name="-x"), "name", "'-x' is not allowed"),
    ("name-long", changes(name="a" * 65), "name", "is not allowed; expected 1-64"),
    ("name-slash", changes(name="a/b"), "name", "'a/b' is not allowed"),
    ("name-int", changes(name=7), "name", "expected a string, got int 7"),
    # [plan]
    ("plan-not-table", changes(plan=3), "plan", "expected a table [plan], got int 3"),
    (
        "mode",
        changes(plan={"mode": "fast"}),
        "plan.mode",
        "'fast' is not allowed; expected one of 'encrypted', 'aggregate'",
    ),
    (
        "key-bits",
        changes(plan={"key_bits": 1024}),
        "plan.key_bits",
        "int 1024 is not allowed; expected one of 2048, 3072, 4096",
    ),
    (
        "key-bits-float",
        changes(plan={"key_bits": 2048.0}),
        "plan.key_bits",
        "float 2048.0 is not allowed",
    ),
    (
        "iterations-0",
        changes(plan={"iterations": 0}),
        "plan.iterations",
        "0 is out of range; expected >= 1",
    ),
    (
        "iterations-float",
        changes(plan={"iterations": 1.5}),
        "plan.iterations",
        "expected an integer, got float 1.5",
    ),
    (
        "iterations-bool",
        changes(plan={"iterations": True}),
        "plan.iterations",
        "expected an integer, got boolean true",
    ),
    ("iterations-huge", changes(plan={"iterations": 2**60}), "plan.iterations", "out of range"),
    ("lr-0", changes(plan={"learning_rate": 0}), "plan.learning_rate", "finite and > 0"),
    (
        "lr-negative",
        changes(plan={"learning_rate": -0.1}),
        "plan.learning_rate",
        "-0.1 is out of range",
    ),
    (
        "lr-nan",
        changes(plan={"learning_rate": float("nan")}),
        "plan.learning_rate",
        "nan is out of range",
    ),
    (
        "lr-inf",
        changes(plan={"learning_rate": float("inf")}),
        "plan.learning_rate",
        "inf is out of range",
    ),
    (
        "lr-huge-integer",
        changes(plan={"learning_rate": 10**400}),
        "plan.learning_rate",
        "is out of range; expected finite and > 0",
    ),
    (
        "lr-string",
        changes(plan={"learning_rate": "0.3"}),
        "plan.learning_rate",
        "expected a number, got string '0.3'",
    ),
    (
        "lr-bool",
        changes(plan={"learning_rate": True}),
        "plan.learning_rate",
        "expected a number, got boolean true",
    ),
    (
        "schedule",
        changes(plan={"schedule": "linear"}),
        "plan.schedule",
        "'linear' is not allowed; expected one of 'constant', 'inverse', 'invsqrt'",
    ),
    ("alpha", changes(plan={"alpha": -0.01}), "plan.alpha", "finite and >= 0"),
    (
        "init-weight",
        changes(plan={"init_weight": float("-inf")}),
        "plan.init_weight",
        "expected finite",
    ),
    ("eval-every", changes(plan={"eval_every": 0}), "plan.eval_every", "expected >= 1"),
    (
        "frac-bits-low",
        changes(plan={"frac_bits": 7}),
        "plan.frac_bits",
        "expected 8 <= value <= 48",
    ),
    ("frac-bits-high", changes(plan={"frac_bits": 49}), "plan.frac_bits", "49 is out of range"),
    (
        "weighting",
        changes(plan={"weighting": "rows"}),
        "plan.weighting",
        "expected one of 'equal', 'samples'",
    ),
    ("batch-size", changes(plan={"batch_size": -1}), "plan.batch_size", "expected >= 0"),
    ("local-epochs", changes(plan={"local_epochs": 0}), "plan.local_epochs", "expected >= 1"),
    ("tolerance", changes(plan={"tolerance": -1e-9}), "plan.tolerance", "never stop early"),
    ("seed-negative", changes(plan={"seed": -1}), "plan.seed", "expected >= 0"),
    (
        "seed-2-pow-53",
        changes(plan={"seed": 2**53}),
        "plan.seed",
        "9007199254740992 is out of range",
    ),
    ("seed-2-pow-63", changes(plan={"seed": 2**63 - 1}), "plan.seed", "out of range"),
    (
        "standardize-int",
        changes(plan={"standardize": 1}),
        "plan.standardize",
        "expected true or false, got int 1",
    ),
    # [participation]
    (
        "policy",
        changes(participation={"policy": "most"}),
        "participation.policy",
        "expected one of 'all', 'quorum'",
    ),
    (
        "quorum-without-min",
        changes(participation={"policy": "quorum", "accept_subset_leakage": True}),
        "participation.min_workers",
        "required when policy = 'quorum'",
    ),
    (
        "min-workers-1",
        changes(participation={**QUORUM, "min_workers": 1, "accept_subset_leakage": True}),
        "participation.min_workers",
        "expected 2 <= min_workers <= 2",
    ),
    (
        "min-workers-above-n",
        three_members(
            changes(participation={**QUORUM, "min_workers": 4, "accept_subset_leakage": True})
        ),
        "participation.min_workers",
        "4 is out of range; expected 2 <= min_workers <= 3",
    ),
    (
        "min-workers-type",
        changes(participation={**QUORUM, "min_workers": "2"}),
        "participation.min_workers",
        "expected an integer",
    ),
    (
        "min-workers-under-all",
        changes(participation={"min_workers": 5}),
        "participation.min_workers",
        "5 is out of range",
    ),
    (
        "quorum-leakage",
        three_members(changes(participation=QUORUM)),
        "participation.accept_subset_leakage",
        "difference of two such sums is one member's update",
    ),
    (
        "two-member-leakage",
        changes(plan={"mode": "aggregate"}),
        "participation.accept_two_member_leakage",
        "2w - own",
    ),
    (
        "accept-subset-type",
        changes(participation={"accept_subset_leakage": "yes"}),
        "participation.accept_subset_leakage",
        "expected true or false, got string 'yes'",
    ),
    (
        "accept-two-type",
        changes(participation={"accept_two_member_leakage": 0}),
        "participation.accept_two_member_leakage",
        "expected true or false, got int 0",
    ),
    # [deadlines]
    (
        "join-0",
        changes(deadlines={"join_s": 0}),
        "deadlines.join_s",
        "0 is out of range; expected seconds, finite, > 0",
    ),
    ("join-negative", changes(deadlines={"join_s": -5.0}), "deadlines.join_s", "out of range"),
    (
        "round-inf",
        changes(deadlines={"round_s": float("inf")}),
        "deadlines.round_s",
        "inf is out of range",
    ),
    (
        "round-string",
        changes(deadlines={"round_s": "60"}),
        "deadlines.round_s",
        "expected a number",
    ),
    (
        "first-round-year",
        changes(deadlines={"first_round_s": 3.2e7}),
        "deadlines.first_round_s",
        "<= 604800 (a week)",
    ),
    # [validation]
    ("validation-missing", without("validation"), "validation", "required table is missing"),
    (
        "features-missing",
        without("validation.features"),
        "validation.features",
        "required key is missing",
    ),
    (
        "features-empty",
        changes(validation={"features": []}),
        "validation.features",
        "non-empty array",
    ),
    (
        "features-string",
        changes(validation={"features": "x0"}),
        "validation.features",
        "got string 'x0'",
    ),
    (
        "features-int",
        changes(validation={"features": ["x0", 1]}),
        "validation.features[1]",
        "expected a string, got int 1",
    ),
    (
        "features-twice",
        changes(validation={"features": ["x0", "x1", "x0"]}),
        "validation.features[2]",
        "'x0' appears twice",
    ),
    (
        "features-blank",
        changes(validation={"features": ["x0", ""]}),
        "validation.features[1]",
        "non-empty",
    ),
    (
        "features-space",
        changes(validation={"features": [" x0"]}),
        "validation.features[0]",
        "surrounding whitespace",
    ),
    (
        "features-control",
        changes(validation={"features": ["x\t0"]}),
        "validation.features[0]",
        "control characters",
    ),
    (
        "features-label",
        changes(validation={"features": ["x0", "y"]}),
        "validation.features[1]",
        "'y' is the label column",
    ),
    (
        "features-id",
        changes(validation={"features": ["id", "x0"]}),
        "validation.features[0]",
        "row id column",
    ),
    ("label-empty", changes(validation={"label": ""}), "validation.label", "non-empty"),
    ("label-id", changes(validation={"label": "id"}), "validation.label", "row id column"),
    ("label-int", changes(validation={"label": 1}), "validation.label", "expected a string"),
    (
        "sha256-short",
        changes(validation={"sha256": "abc"}),
        "validation.sha256",
        "expected 64 hex digits",
    ),
    (
        "sha256-nonhex",
        changes(validation={"sha256": "g" * 64}),
        "validation.sha256",
        "expected 64 hex digits",
    ),
    # [privacy]
    ("privacy-not-table", changes(privacy="on"), "privacy", "expected a table [privacy]"),
    (
        "level-missing",
        changes(privacy={k: v for k, v in RECORD.items() if k != "level"}),
        "privacy.level",
        "required key is missing",
    ),
    (
        "level",
        changes(privacy={**RECORD, "level": "user"}),
        "privacy.level",
        "expected one of 'member', 'record'",
    ),
    (
        "no-epsilon-no-noise",
        changes(privacy={k: v for k, v in RECORD.items() if k != "epsilon"}),
        "privacy.epsilon",
        "give epsilon",
    ),
    ("epsilon-0", changes(privacy={**RECORD, "epsilon": 0}), "privacy.epsilon", "finite and > 0"),
    (
        "epsilon-inf",
        changes(privacy={**RECORD, "epsilon": float("inf")}),
        "privacy.epsilon",
        "inf is out of range",
    ),
    (
        "delta-missing",
        changes(privacy={k: v for k, v in RECORD.items() if k != "delta"}),
        "privacy.delta",
        "required key is missing",
    ),
    ("delta-0", changes(privacy={**RECORD, "delta": 0.0}), "privacy.delta", "0 < delta < 1"),
    ("delta-1", changes(privacy={**RECORD, "delta": 1}), "privacy.delta", "0 < delta < 1"),
    (
        "clip-missing",
        changes(privacy={k: v for k, v in RECORD.items() if k != "clip"}),
        "privacy.clip",
        "required key is missing",
    ),
    ("clip-0", changes(privacy={**RECORD, "clip": 0}), "privacy.clip", "finite and > 0"),
    (
        "noise-0",
        changes(privacy={**RECORD, "noise_multiplier": 0.0}),
        "privacy.noise_multiplier",
        "finite and > 0",
    ),
    (
        "record-no-bound",
        changes(privacy={k: v for k, v in RECORD.items() if k != "model_bound"}),
        "privacy.model_bound",
        "required when level = 'record'",
    ),
    (
        "model-bound-0",
        changes(privacy={**RECORD, "model_bound": 0.0}),
        "privacy.model_bound",
        "finite and > 0",
    ),
    (
        "member-with-bound",
        changes(plan={"mode": "aggregate"}, privacy={**MEMBER, "model_bound": 3.0}),
        "privacy.model_bound",
        "only used when level = 'record'",
    ),
    (
        "record-aggregate",
        changes(plan={"mode": "aggregate"}, privacy=RECORD),
        "privacy.level",
        "'record' needs plan.mode = 'encrypted'",
    ),
    (
        "member-encrypted",
        changes(privacy=MEMBER),
        "privacy.level",
        "'member' needs plan.mode = 'aggregate'",
    ),
    # [[members]]
    (
        "members-missing",
        without("members"),
        "members",
        "at least 2 [[members]] are required, found 0",
    ),
    (
        "members-one",
        lambda d, _i: {**d, "members": d["members"][:1]},
        "members",
        "found 1; each member runs `homolr keygen --id <id>`",
    ),
    (
        "members-not-tables",
        changes(members=["guest", "host"]),
        "members",
        "expected [[members]] tables",
    ),
    ("id-missing", without_member_key(0, "id"), "members[0].id", "required key is missing"),
    ("id-bad", member_field(0, id="../guest"), "members[0].id", "member id '../guest'"),
    (
        "id-twice",
        lambda d, _i: {**d, "members": [d["members"][0], d["members"][1], d["members"][0]]},
        "members[2].id",
        "'guest' also names members[0]",
    ),
    (
        "fingerprint-missing",
        without_member_key(1, "fingerprint"),
        "members[1].fingerprint",
        "required key is missing",
    ),
    (
        "fingerprint-format",
        member_field(1, fingerprint="sha1:abcd"),
        "members[1].fingerprint",
        "expected 'sha256:' followed by 64 hex digits",
    ),
    (
        "fingerprint-other",
        lambda d, i: member_field(0, fingerprint=i["host"].fingerprint)(d, i),
        "members[0].fingerprint",
        "is not the fingerprint of the certificate's key",
    ),
    (
        "same-key-twice",
        same_key_twice,
        "members[1].fingerprint",
        "'host' has the same key as 'guest'",
    ),
    (
        "certificate-missing",
        without_member_key(0, "certificate"),
        "members[0].certificate",
        "required key is missing",
    ),
    (
        "certificate-garbage",
        member_field(0, certificate="hello"),
        "members[0].certificate",
        "member 'guest': not a PEM certificate",
    ),
    (
        "certificate-bad-base64",
        member_field(
            0, certificate="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        ),
        "members[0].certificate",
        "not a PEM certificate",
    ),
    (
        "certificate-two",
        lambda d, i: member_field(
            0, certificate=d["members"][0]["certificate"] + d["members"][1]["certificate"]
        )(d, i),
        "members[0].certificate",
        "expected one PEM certificate, found 2",
    ),
    (
        "certificate-text-around",
        lambda d, i: member_field(
            0, certificate="subject=guest\n" + d["members"][0]["certificate"]
        )(d, i),
        "members[0].certificate",
        "nothing else",
    ),
    (
        "certificate-other-member",
        lambda d, i: member_field(0, certificate=d["members"][1]["certificate"])(d, i),
        "members[0].certificate",
        "common name 'host' differs from the member id 'guest'",
    ),
    (
        "certificate-ca",
        certificate_for(0, lambda cn: pem(make_certificate(cn, ca=True)[0])),
        "members[0].certificate",
        "is a CA certificate",
    ),
    (
        "certificate-two-cns",
        certificate_for(0, lambda cn: pem(make_certificate([cn, cn])[0])),
        "members[0].certificate",
        "has 2 common names",
    ),
    (
        "certificate-san",
        certificate_for(0, lambda cn: pem(make_certificate(cn, san_uri="homolr-member:host")[0])),
        "members[0].certificate",
        "SAN URI 'homolr-member:host' names another member",
    ),
    (
        "certificate-signed-by-other-key",
        certificate_for(
            0,
            lambda cn: pem(make_certificate(cn, signer=ec.generate_private_key(ec.SECP256R1()))[0]),
        ),
        "members[0].certificate",
        "signature does not verify with its own public key",
    ),
    (
        "certificate-issued-by-ca",
        certificate_for(0, issued_by_operator_ca),
        "members[0].certificate",
        "is not self-signed: issuer",
    ),
    (
        "certificate-sha224",
        certificate_for(0, lambda cn: pem(make_certificate(cn, hash_algorithm=hashes.SHA224())[0])),
        "members[0].certificate",
        "hash sha224: expected SHA-256, -384 or -512",
    ),
    (
        "certificate-rsa-1024",
        certificate_for(
            0, lambda cn: pem(make_certificate(cn, key=rsa.generate_private_key(65537, 1024))[0])
        ),
        "members[0].certificate",
        "RSA 1024-bit",
    ),
    (
        "certificate-ed25519",
        certificate_for(
            0, lambda cn: pem(make_certificate(cn, key=ed25519.Ed25519PrivateKey.generate())[0])
        ),
        "members[0].certificate",
        "Ed25519PublicKey: expected EC P-256",
    ),
    (
        "certificate-secp256k1",
        certificate_for(
            0, lambda cn: pem(make_certificate(cn, key=ec.generate_private_key(ec.SECP256K1()))[0])
        ),
        "members[0].certificate",
        "EC secp256k1",
    ),
    (
        "certificate-no-digital-signature",
        certificate_for(0, lambda cn: pem(make_certificate(cn, key_usage=False)[0])),
        "members[0].certificate",
        "lacks digitalSignature",
    ),
    (
        "certificate-no-key-usage",
        certificate_for(0, lambda cn: pem(make_certificate(cn, key_usage=None)[0])),
        "members[0].certificate",
        "has no KeyUsage extension",
    ),
    (
        "certificate-key-cert-sign",
        certificate_for(0, lambda cn: pem(make_certificate(cn, cert_sign=True)[0])),
        "members[0].certificate",
        "allows keyCertSign",
    ),
    (
        "certificate-server-only",
        certificate_for(0, lambda cn: pem(make_certificate(cn, client_auth=False)[0])),
        "members[0].certificate",
        "lacks clientAuth",
    ),
]


@pytest.mark.parametrize(
    ("mutation", "field", "phrase"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_every_rule_refuses_and_names_the_field(
    document: Document, identities: Identities, mutation: Mutation, field: str, phrase: str
) -> None:
    bad = mutation(document, identities)
    with pytest.raises(ConfigError) as info:
        parse(bad)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: "), message
    assert field in message, message
    assert phrase in message, message


def test_the_valid_documents_used_above_are_valid(document: Document, document3: Document) -> None:
    parse(document)
    parse(document3)
    parse(with_changes(document3, participation={**QUORUM, "accept_subset_leakage": True}))


# --- what a valid file means ------------------------------------------------------------------


def test_minimal_file_takes_every_default(document: Document) -> None:
    federation = parse(document)
    assert federation.version == 1 and federation.name == "wisconsin"
    for key, value in plan_defaults("encrypted").items():
        assert getattr(federation.plan, key) == value, key
    assert federation.plan.iterations == 400 and federation.plan.learning_rate == 0.3
    assert federation.plan.weighting == "equal" and federation.plan.key_bits == 2048
    assert (federation.plan.batch_size, federation.plan.local_epochs) == (64, 2)
    assert federation.participation.policy == "all"
    assert federation.participation.min_workers == 2
    assert not federation.participation.accept_subset_leakage
    assert (federation.deadlines.join_s, federation.deadlines.round_s) == (300.0, 60.0)
    assert federation.deadlines.first_round_s == 300.0
    assert federation.validation.features == ("x0", "x1")
    assert (federation.validation.label, federation.validation.sha256) == ("y", "")
    assert federation.privacy is None


def test_aggregate_mode_takes_the_aggregate_defaults(document3: Document) -> None:
    plan = parse(with_changes(document3, plan={"mode": "aggregate"})).plan
    assert (plan.iterations, plan.learning_rate, plan.alpha) == (100, 0.2, 0.003)
    assert (plan.weighting, plan.batch_size, plan.local_epochs) == ("samples", 64, 2)
    assert plan.schedule == "constant"


def test_explicit_values_override_the_mode_defaults(document3: Document) -> None:
    plan = parse(
        with_changes(document3, plan={"mode": "aggregate", "iterations": 7, "weighting": "equal"})
    ).plan
    assert (plan.iterations, plan.weighting, plan.learning_rate) == (7, "equal", 0.2)


def test_plan_defaults_come_from_the_learning_package() -> None:
    for mode, tuned in (("encrypted", ENCRYPTED_DEFAULTS), ("aggregate", AGGREGATE_DEFAULTS)):
        defaults = plan_defaults(mode)  # type: ignore[arg-type]
        assert set(tuned) <= set(SCHEMA["plan"]), "a tuned default has no federation key"
        assert set(defaults) == set(SCHEMA["plan"])
        for key, value in tuned.items():
            assert defaults[key] == value


def test_enumerations_match_the_protocol() -> None:
    assert MODES == messages.MODES
    assert WEIGHTINGS == messages.WEIGHTINGS


def test_floats_accept_integers_and_are_normalized_to_float(document: Document) -> None:
    federation = parse(
        with_changes(
            document,
            plan={"learning_rate": 1, "alpha": 0, "init_weight": -1, "tolerance": 0},
            deadlines={"join_s": 10, "round_s": 5, "first_round_s": 20},
        )
    )
    values = [
        federation.plan.learning_rate,
        federation.plan.alpha,
        federation.plan.init_weight,
        federation.plan.tolerance,
        federation.deadlines.join_s,
        federation.deadlines.round_s,
        federation.deadlines.first_round_s,
    ]
    assert values == [1.0, 0.0, -1.0, 0.0, 10.0, 5.0, 20.0]
    assert all(type(value) is float for value in values)


def test_policy_all_normalizes_min_workers_to_every_member(document3: Document) -> None:
    federation = parse(with_changes(document3, participation={"policy": "all", "min_workers": 2}))
    assert federation.participation.min_workers == 3


def test_quorum_keeps_min_workers(document3: Document) -> None:
    federation = parse(
        with_changes(document3, participation={**QUORUM, "accept_subset_leakage": True})
    )
    assert (federation.participation.policy, federation.participation.min_workers) == ("quorum", 2)


def test_privacy_replaces_the_leakage_consents(document: Document, document3: Document) -> None:
    quorum = parse(with_changes(document3, participation=QUORUM, privacy=RECORD))
    assert quorum.privacy is not None and quorum.privacy.level == "record"
    assert quorum.privacy.noise_multiplier is None and quorum.privacy.model_bound == 10.0
    aggregate = parse(
        with_changes(document, plan={"mode": "aggregate", "weighting": "equal"}, privacy=MEMBER)
    )
    assert aggregate.privacy is not None and aggregate.privacy.model_bound is None
    consented = parse(
        with_changes(
            document, plan={"mode": "aggregate"}, participation={"accept_two_member_leakage": True}
        )
    )
    assert consented.privacy is None
    three = parse(with_changes(document3, plan={"mode": "aggregate"}))  # 3 members: no 2w - own
    assert three.plan.mode == "aggregate"


def test_noise_multiplier_alone_is_enough(document: Document) -> None:
    privacy = {k: v for k, v in RECORD.items() if k != "epsilon"} | {"noise_multiplier": 1.1}
    federation = parse(with_changes(document, privacy=privacy))
    assert federation.privacy is not None
    assert (federation.privacy.epsilon, federation.privacy.noise_multiplier) == (None, 1.1)


def test_members_are_sorted_and_fingerprints_lowercased(
    identities: Identities, document3: Document
) -> None:
    shuffled = copy.deepcopy(document3)
    shuffled["members"].reverse()
    shuffled["members"][0]["fingerprint"] = (
        "sha256:" + shuffled["members"][0]["fingerprint"][7:].upper()
    )
    federation = parse(shuffled)
    assert federation.member_ids == ("guest", "host", "third")
    assert federation.members[2].fingerprint == identities["third"].fingerprint


def test_member_lookups(identities: Identities, document: Document) -> None:
    federation = parse(document)
    guest = federation.member("guest")
    assert guest is not None and guest.fingerprint == identities["guest"].fingerprint
    assert federation.member("mallory") is None
    upper = "sha256:" + identities["host"].fingerprint[7:].upper()
    host = federation.member_by_fingerprint(upper)
    assert host is not None and host.id == "host"
    assert federation.member_by_fingerprint(identities["third"].fingerprint) is None


def test_certificate_pem_is_normalized(identities: Identities, document: Document) -> None:
    crlf = copy.deepcopy(document)
    crlf["members"][0]["certificate"] = (
        "\n\n" + document["members"][0]["certificate"].replace("\n", "\r\n") + "\n\n"
    )
    federation = parse(crlf)
    assert federation.members[0].certificate_pem == identities["guest"].certificate_pem


def test_sections_given_as_inline_tables_are_read(document: Document) -> None:
    text = 'plan = { mode = "encrypted", iterations = 9 }\n' + to_toml(document)
    assert parse_federation(text, SOURCE).plan.iterations == 9


def test_federation_from_document_is_the_same_validator(document: Document) -> None:
    assert federation_from_document(document, SOURCE) == parse(document)
    assert isinstance(parse(document), Federation)


def test_unknown_keys_are_all_named_at_once(document: Document) -> None:
    bad = with_changes(document, colour=1, plan={"x": 1}, validation={"y": 2})
    bad["members"][0]["z"] = 3
    with pytest.raises(ConfigError) as info:
        parse(bad)
    listed = re.search(r"unknown keys (.*) \(", str(info.value))
    assert listed is not None
    assert listed.group(1) == "colour, members[0].z, plan.x, validation.y"


def test_member_entry_helper_round_trips(identities: Identities) -> None:
    entry = member_entry("guest", identities["guest"])
    assert entry["certificate"].startswith("-----BEGIN CERTIFICATE-----")
