"""describe_differences: every differing field named with both values; empty iff same hash."""

from __future__ import annotations

import copy
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from homolr.enclave.identity import generate_member_identity
from homolr.federation import describe_differences, federation_hash
from tests.federation.support import RECORD, Document, Identities, member_entry, parse, with_changes

QUORUM = {"policy": "quorum", "min_workers": 2, "accept_subset_leakage": True}


def test_identical_federations_have_no_differences(document3: Document) -> None:
    assert describe_differences(parse(document3), parse(copy.deepcopy(document3))) == []


def test_scalar_fields_name_path_and_both_values(document3: Document) -> None:
    mine = parse(document3)
    theirs = parse(
        with_changes(
            document3,
            name="other",
            participation=QUORUM,
            plan={"learning_rate": 0.5, "standardize": True},
            validation={"features": ["x0", "x2"], "bounds": [10.0, 10.0]},
        )
    )
    assert describe_differences(mine, theirs) == [
        "name: 'wisconsin' (yours) vs 'other' (PS)",
        "plan.learning_rate: 0.3 (yours) vs 0.5 (PS)",
        "plan.standardize: false (yours) vs true (PS)",
        "participation.policy: 'all' (yours) vs 'quorum' (PS)",
        "participation.min_workers: 3 (yours) vs 2 (PS)",
        "participation.accept_subset_leakage: false (yours) vs true (PS)",
        "validation.features: ['x0', 'x1'] (yours) vs ['x0', 'x2'] (PS)",
        "validation.bounds: [] (yours) vs [10.0, 10.0] (PS)",
    ]


def test_members_added_removed_and_rekeyed(identities: Identities, document: Document) -> None:
    mallory = generate_member_identity("mallory")
    rekeyed = generate_member_identity("host")
    theirs_document = copy.deepcopy(document)
    theirs_document["members"] = [
        member_entry("guest", identities["guest"]),
        member_entry("host", rekeyed),
        member_entry("mallory", mallory),
    ]
    mine = parse(
        with_changes(
            document, members=[*document["members"], member_entry("third", identities["third"])]
        )
    )
    lines = describe_differences(mine, parse(theirs_document))
    assert f"members: PS lists 'mallory' ({mallory.fingerprint}) which your file does not" in lines
    assert (
        f"members: your file lists 'third' ({identities['third'].fingerprint}) which PS does not"
        in lines
    )
    assert (
        f"members.host.fingerprint: {identities['host'].fingerprint} (yours) vs "
        f"{rekeyed.fingerprint} (PS)"
    ) in lines
    assert len(lines) == 3


def test_same_key_with_another_certificate_is_reported(
    identities: Identities, document: Document
) -> None:
    key = serialization.load_pem_private_key(identities["guest"].private_key_pem, password=None)
    original = x509.load_pem_x509_certificate(identities["guest"].certificate_pem)
    builder = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.subject)
        .public_key(original.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(original.not_valid_before_utc)
        .not_valid_after(original.not_valid_after_utc + datetime.timedelta(days=1))
    )
    for extension in original.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    reissued = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    theirs_document = copy.deepcopy(document)
    theirs_document["members"][0]["certificate"] = reissued.public_bytes(
        serialization.Encoding.PEM
    ).decode()
    mine, theirs = parse(document), parse(theirs_document)
    assert federation_hash(mine) != federation_hash(theirs)
    (line,) = describe_differences(mine, theirs)
    assert line.startswith(
        f"members.guest.certificate: same key {identities['guest'].fingerprint} but another "
        "certificate (SHA-256 "
    )
    assert original.fingerprint(hashes.SHA256()).hex()[:16] in line
    assert reissued.fingerprint(hashes.SHA256()).hex()[:16] in line


def test_privacy_absent_present_and_changed(document: Document) -> None:
    plain, private = parse(document), parse(with_changes(document, privacy=RECORD))
    (line,) = describe_differences(plain, private)
    assert line == (
        "privacy: absent (no differential privacy) (yours) vs [privacy] {level = 'record', "
        "epsilon = 2.0, delta = 1e-05, clip = 2.5, noise_multiplier = not set, model_bound = "
        "10.0, min_samples = 200} (PS)"
    )
    assert describe_differences(private, plain)[0].startswith("privacy: [privacy] {level")
    stronger = parse(
        with_changes(document, privacy={**RECORD, "epsilon": 1.0, "noise_multiplier": 2.0})
    )
    assert describe_differences(private, stronger) == [
        "privacy.epsilon: 2.0 (yours) vs 1.0 (PS)",
        "privacy.noise_multiplier: not set (yours) vs 2.0 (PS)",
    ]


def test_labels_can_be_chosen(document3: Document) -> None:
    mine, theirs = parse(document3), parse(with_changes(document3, deadlines={"round_s": 30}))
    assert describe_differences(mine, theirs, mine_label="worker", theirs_label="quote") == [
        "deadlines.round_s: 60.0 (worker) vs 30.0 (quote)"
    ]


def test_no_differences_exactly_when_the_hashes_agree(
    identities: Identities, document3: Document
) -> None:
    base = parse(document3)
    reordered = copy.deepcopy(document3)
    reordered["members"].reverse()
    variants = [
        parse(reordered),
        parse(with_changes(document3, deadlines={"join_s": 300})),
        parse(with_changes(document3, plan={"mode": "aggregate"})),
        parse(with_changes(document3, validation={"sha256": "c" * 64})),
        parse(with_changes(document3, validation={"features": ["x1", "x0"]})),
        parse(with_changes(document3, privacy=RECORD)),
        parse(with_changes(document3, participation={"accept_two_member_leakage": True})),
        parse({**document3, "members": document3["members"][:2]}),
        parse(with_changes(document3, version=1, name="wisconsin")),
    ]
    for variant in variants:
        same_hash = federation_hash(variant) == federation_hash(base)
        assert (describe_differences(base, variant) == []) == same_hash
        assert (describe_differences(variant, base) == []) == same_hash
