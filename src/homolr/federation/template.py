"""The commented federation.toml template (what ``homolr init`` writes) and member blocks.

Every key of the schema appears in the template with a comment saying what it means, its unit,
the allowed values and the default. Required keys are written out; optional keys are commented
out (``# key = default``), so the file states the defaults without fixing them. Uncommenting
every such line gives a valid file that sets every key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from homolr.errors import ConfigError
from homolr.federation.certificates import (
    certificate_pem_text,
    check_member_certificate,
    fingerprint_of,
    normalize_fingerprint,
    validate_member_id,
)
from homolr.federation.loading import parse_federation
from homolr.federation.schema import (
    DEADLINE_DEFAULTS,
    KEY_BITS,
    MAX_DEADLINE_S,
    NAME_PATTERN,
    PARTICIPATION_DEFAULTS,
    VALIDATION_DEFAULTS,
    plan_defaults,
    validation_section,
)

#: Consortium name written by :func:`render_template` when none is given.
DEFAULT_NAME = "my-consortium"
#: Placeholder feature names (replace with the columns of the members' CSV files).
DEFAULT_FEATURES: tuple[str, ...] = ("x0", "x1")

_RULE = "# " + "-" * 96

_HEADER = """\
# federation.toml -- the federation file of one homolr consortium (format version 1).
#
# WHAT IT IS. The members of the consortium agree on this file OUT OF BAND (in a meeting, by
# signed e-mail, in a repository they all review) before any training, and every member keeps an
# identical copy. It fixes the training plan, who must take part, the deadlines, the validation
# columns, differential privacy and the list of members.
#
# WHY IT CAN BE TRUSTED. The parameter server (PS) runs inside an SGX enclave. It loads this file,
# hashes its canonical form (RFC 8785 JSON of the normalized content: comments, key order,
# whitespace and defaults written out do not change the hash; every change of meaning does) and
# binds that hash into the enclave's quote. A worker refuses to take part unless the quote binds
# exactly the hash of its own copy of this file, so nobody -- the PS operator included -- can
# change the plan or add a member behind the consortium's back.
#
# MEMBERS. Each member makes its own key pair: it runs `homolr keygen --id <id>`, keeps the private
# key to itself and sends the [[members]] block that command prints (id, fingerprint, certificate)
# to the consortium. Paste every member's block verbatim at the end of this file. The PS admits a
# TLS client only if its certificate's public key is listed here.
#
# KEYS. Every key is listed with its meaning, unit, allowed values and default. Optional keys are
# commented out and show their default; remove the leading '# ' to set one.
"""

_MEMBERS_HELP = """\
# One [[members]] block per member, at least 2, exactly as `homolr keygen --id <id>` prints it:
#   id           the member's name: 1-64 characters from letters, digits, '_', '.', '-',
#                starting with a letter or digit; unique; the certificate's common name.
#   fingerprint  "sha256:" and the SHA-256 (64 hex digits) of the certificate's public key
#                (DER SubjectPublicKeyInfo). This IS the member's identity: check it with the
#                member over a second channel (phone, in person) before accepting the block.
#   certificate  the member's self-signed certificate (PEM, not a CA). The PS accepts exactly
#                these certificates' keys as TLS clients; the member keeps the private key.
"""

_PLACEHOLDER_MEMBERS = """\
# Paste the blocks here, for example:
#
# [[members]]
# id = "hospital-a"
# fingerprint = "sha256:<64 hex digits from homolr keygen>"
# certificate = \"\"\"
# -----BEGIN CERTIFICATE-----
# <base64 lines from homolr keygen>
# -----END CERTIFICATE-----
# \"\"\"
"""


@dataclass(frozen=True)
class _Key:
    """One key of the template: its value, whether it is written out, and its comment."""

    name: str
    value: object
    comment: str
    active: bool = False


def toml_value(value: object) -> str:
    """``value`` as a TOML literal (strings, booleans, integers, floats, arrays of those)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # shortest round-trip form, valid TOML for finite floats
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON escapes are TOML basic-string escapes
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML literal for {type(value).__name__}")


def federation_member_snippet(
    member_id: str, certificate_pem: bytes | str, fingerprint: str
) -> str:
    """The ``[[members]]`` TOML block a member sends to its consortium, pasted verbatim.

    Raises
    ------
    ConfigError
        when the certificate cannot stand for ``member_id`` (see
        :func:`~homolr.federation.certificates.check_member_certificate`) or ``fingerprint`` is
        not its key's fingerprint.
    """
    validate_member_id(member_id)
    certificate = check_member_certificate(certificate_pem, member_id)
    actual = fingerprint_of(certificate)
    if normalize_fingerprint(fingerprint) != actual:
        raise ConfigError(
            f"member {member_id!r}: fingerprint {fingerprint} is not that of the certificate's "
            f"key ({actual})"
        )
    return (
        "[[members]]\n"
        f"id = {toml_value(member_id)}\n"
        f"fingerprint = {toml_value(actual)}\n"
        f'certificate = """\n{certificate_pem_text(certificate)}"""\n'
    )


def render_template(
    name: str = DEFAULT_NAME,
    members: Sequence[tuple[str, str, bytes | str]] = (),
    *,
    features: Sequence[str] = DEFAULT_FEATURES,
) -> str:
    """The commented federation.toml template.

    Parameters
    ----------
    name
        The consortium's name.
    members
        ``(id, fingerprint, certificate PEM)`` of each member, written as ``[[members]]``
        blocks; with none, a commented example block shows where they go (the file is then not
        valid until at least two members are pasted in).
    features
        The feature columns, in wire order.

    Raises
    ------
    ConfigError
        for an invalid name, feature list or member; with members, whenever the rendered file
        would not load.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"federation template: name {name!r} is not a valid consortium name")
    validation_section({"features": list(features)}, "federation template")
    sections = [
        _HEADER,
        _keys(
            [
                _Key("version", 1, "Format version of this file: 1.", active=True),
                _Key(
                    "name",
                    name,
                    "Name of the consortium: 1-64 characters from letters, digits, '_', '.', "
                    "'-', starting with a letter or digit.",
                    active=True,
                ),
            ]
        ),
        _table("plan", "what every member trains, identically", _plan_keys()),
        _table("participation", "whose updates each round needs", _participation_keys()),
        _table("deadlines", "how long the PS waits, in seconds", _deadline_keys()),
        _table("validation", "the columns of the data", _validation_keys(features)),
        _table(
            "privacy",
            "differential privacy; without this table there is none",
            _privacy_keys(),
            commented=True,
        ),
        f"{_RULE}\n# [[members]] -- who the consortium is\n{_RULE}\n{_MEMBERS_HELP}",
    ]
    if members:
        sections += [
            federation_member_snippet(member_id, certificate, fingerprint)
            for member_id, fingerprint, certificate in members
        ]
    else:
        sections.append(_PLACEHOLDER_MEMBERS)
    text = "\n".join(sections)
    if members:
        parse_federation(text, "federation template")  # e.g. duplicate ids or keys
    return text


def _table(name: str, title: str, keys: list[_Key], *, commented: bool = False) -> str:
    header = f"{_RULE}\n# [{name}] -- {title}\n{_RULE}\n"
    return header + ("# " if commented else "") + f"[{name}]\n" + _keys(keys)


def _keys(keys: list[_Key]) -> str:
    lines: list[str] = []
    for key in keys:
        lines += [f"# {line}" for line in _wrap(key.comment)]
        lines.append(("" if key.active else "# ") + f"{key.name} = {toml_value(key.value)}")
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int = 96) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*lines, current]


def _both(key: str) -> tuple[object, str]:
    """Encrypted-mode default of a plan key, and a sentence naming both modes' defaults."""
    encrypted, aggregate = plan_defaults("encrypted")[key], plan_defaults("aggregate")[key]
    if encrypted == aggregate:
        return encrypted, f"Default {toml_value(encrypted)}."
    return encrypted, (
        f'Default {toml_value(encrypted)} in mode "encrypted", {toml_value(aggregate)} in '
        'mode "aggregate".'
    )


def _plan_keys() -> list[_Key]:
    def key(name: str, meaning: str) -> _Key:
        value, default = _both(name)
        return _Key(name, value, f"{meaning} {default}")

    return [
        _Key(
            "mode",
            "encrypted",
            '"encrypted": every member computes its Taylor-approximated gradient step on the '
            'Paillier-encrypted global model; "aggregate": every member trains on its data in '
            "plaintext and encrypts its local model. Either way the enclave decrypts only sums "
            'over members. Default "encrypted"; the defaults of the keys below depend on it.',
            active=True,
        ),
        _Key(
            "key_bits",
            plan_defaults("encrypted")["key_bits"],
            "Size in bits of the enclave's Paillier modulus: "
            + ", ".join(str(bits) for bits in KEY_BITS)
            + ". Default 2048.",
        ),
        key("iterations", "Training rounds, >= 1."),
        key("learning_rate", "Initial step size, finite and > 0."),
        key(
            "schedule",
            'Learning rate of round t: "constant" (learning_rate), "inverse" '
            '(learning_rate / (1 + t)) or "invsqrt" (learning_rate / sqrt(1 + t)).',
        ),
        key("alpha", "L2 regularization strength, finite and >= 0."),
        key("init_weight", "Initial value of every weight of the model (bias included), finite."),
        key(
            "eval_every",
            "Evaluate the global model on the validation data every this many rounds, >= 1.",
        ),
        key(
            "frac_bits",
            "Fraction bits of the fixed-point encoding of real numbers before encryption, 8 to 48.",
        ),
        key(
            "weighting",
            'How member updates are averaged: "equal" (each member counts the same) or '
            '"samples" (each member in proportion to its number of training rows).',
        ),
        key(
            "batch_size",
            'Mode "aggregate": rows per local mini-batch, >= 0 (0 = all of the member\'s rows).',
        ),
        key("local_epochs", 'Mode "aggregate": passes over the local data per round, >= 1.'),
        key(
            "tolerance",
            "Stop early once no weight changes by more than this in a round, finite and >= 0 "
            "(0 = never stop early).",
        ),
        key("seed", "Seed of the members' random shuffling, an integer from 0 to 2**53 - 1."),
        key(
            "standardize",
            "true: before training, one federated round computes the features' global mean and "
            "standard deviation, and every member standardizes its data with them.",
        ),
    ]


def _participation_keys() -> list[_Key]:
    return [
        _Key(
            "policy",
            PARTICIPATION_DEFAULTS["policy"],
            '"all": every round needs every member; "quorum": a round proceeds once at least '
            'min_workers members submitted. Default "all".',
            active=True,
        ),
        _Key(
            "min_workers",
            2,
            'Policy "quorum" (required there): fewest members whose updates a round sums, from 2 '
            'to the number of members. Policy "all" always means every member.',
        ),
        _Key(
            "accept_subset_leakage",
            PARTICIPATION_DEFAULTS["accept_subset_leakage"],
            'Policy "quorum" without [privacy] is refused unless this is true: rounds that sum '
            "different subsets of members can be differenced into one member's update. Default "
            "false.",
        ),
        _Key(
            "accept_two_member_leakage",
            PARTICIPATION_DEFAULTS["accept_two_member_leakage"],
            'Mode "aggregate" with exactly 2 members and no [privacy] is refused unless this is '
            "true: each member receives the average w of both models and can compute the other's "
            "as 2w - own. Default false.",
        ),
    ]


def _deadline_keys() -> list[_Key]:
    bound = f"finite, > 0 and at most {MAX_DEADLINE_S:.0f} (a week)"
    return [
        _Key(
            "join_s",
            DEADLINE_DEFAULTS["join_s"],
            f"Seconds the PS waits for the members to join before training starts; {bound}. "
            f"Default {toml_value(DEADLINE_DEFAULTS['join_s'])}.",
        ),
        _Key(
            "round_s",
            DEADLINE_DEFAULTS["round_s"],
            f"Seconds each member has to submit its update in a round (after the first); "
            f"{bound}. Default {toml_value(DEADLINE_DEFAULTS['round_s'])}.",
        ),
        _Key(
            "first_round_s",
            DEADLINE_DEFAULTS["first_round_s"],
            f"Deadline of the first round, which also covers the members' slow first step; "
            f"{bound}. Default {toml_value(DEADLINE_DEFAULTS['first_round_s'])}.",
        ),
    ]


def _validation_keys(features: Sequence[str]) -> list[_Key]:
    return [
        _Key(
            "features",
            list(features),
            "Required: the feature columns of every member's CSV, in the order the model uses "
            "them (its weights follow this order, bias first); unique, non-empty names.",
            active=True,
        ),
        _Key(
            "label",
            VALIDATION_DEFAULTS["label"],
            f"Name of the 0/1 label column. Default {toml_value(VALIDATION_DEFAULTS['label'])}.",
        ),
        _Key(
            "sha256",
            VALIDATION_DEFAULTS["sha256"],
            "SHA-256 (64 hex digits) of the bytes of the validation CSV the PS must evaluate on, "
            'so the operator cannot swap it; "" = not pinned. Default "".',
        ),
        _Key(
            "bounds",
            [],
            "Largest absolute value of each feature, in the data's units, one per feature, each "
            "> 0; required when plan.standardize = true (the statistics round needs them; "
            "members refuse rows beyond them). Default [] (none).",
        ),
    ]


def _privacy_keys() -> list[_Key]:
    return [
        _Key(
            "level",
            "record",
            '"record": bounds the influence of each training row (needs mode "encrypted"; the '
            'key holder noises the decrypted step); "member": bounds the influence of each '
            'member\'s whole update (needs mode "aggregate"). Required.',
        ),
        _Key(
            "epsilon",
            2.0,
            "Target epsilon of (epsilon, delta)-differential privacy over the whole training, "
            "finite and > 0. Give epsilon, noise_multiplier, or both.",
        ),
        _Key("delta", 1e-5, "Target delta, 0 < delta < 1. Required."),
        _Key(
            "clip",
            2.5,
            'Clipping bound, finite and > 0. Required. Level "member": largest L2 norm of a '
            'member\'s model update; level "record": largest L2 norm of a data row.',
        ),
        _Key(
            "noise_multiplier",
            1.1,
            "Optional fixed noise multiplier (noise standard deviation / sensitivity), finite "
            "and > 0, used instead of calibrating the noise from epsilon.",
        ),
        _Key(
            "model_bound",
            10.0,
            'Level "record" only, required there: radius of the L2 ball the key holder projects '
            "the model onto, finite and > 0.",
        ),
        _Key(
            "min_samples",
            200,
            'Level "record" only, required there: the fewest rows any member holds, >= 1; '
            "members with fewer rows refuse to train (one row's influence on a step is bounded "
            "by lr / min_samples).",
        ),
    ]


def set_plan_values(text: str, values: Mapping[str, object]) -> str:
    """``text`` (a rendered template) with ``[plan]`` keys set: their commented default line
    (``# key = default``) becomes ``key = value``.

    Raises
    ------
    ConfigError
        For a key the ``[plan]`` table of the template does not show.
    """
    lines = text.split("\n")
    start = lines.index("[plan]")
    for key, value in values.items():
        for index in range(start, len(lines)):
            line = lines[index]
            if index > start and line.startswith("["):
                raise ConfigError(f"federation template: [plan] has no key {key!r}")
            if re.fullmatch(rf"(# )?{re.escape(key)} = .*", line):
                lines[index] = f"{key} = {toml_value(value)}"
                break
    return "\n".join(lines)


#: The template ``homolr init`` writes: placeholder members, to be replaced by real blocks.
TEMPLATE: str = render_template()

__all__ = [
    "DEFAULT_FEATURES",
    "DEFAULT_NAME",
    "TEMPLATE",
    "federation_member_snippet",
    "render_template",
    "set_plan_values",
    "toml_value",
]
