"""Human-readable differences between two federations (a member's file and the PS's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes

from homolr.federation.certificates import load_certificate
from homolr.federation.schema import Federation, Member

_SECTIONS = ("plan", "participation", "deadlines", "validation")


def describe_differences(
    mine: Federation, theirs: Federation, *, mine_label: str = "yours", theirs_label: str = "PS"
) -> list[str]:
    """One line per differing field of two federations, naming its path and both values.

    For example ``participation.policy: 'all' (yours) vs 'quorum' (PS)`` or ``members: PS lists
    'mallory' (sha256:ab12...) which your file does not``. Members are matched by id and
    compared by fingerprint; a member with the same key but another certificate is reported too.
    The list is empty exactly when both have the same canonical form (the same hash).

    Parameters
    ----------
    mine, theirs
        The two federations; ``mine_label``/``theirs_label`` name them in the lines.
    """
    ours, other = mine.to_document(), theirs.to_document()
    show = _Shower(mine_label, theirs_label)
    lines = [show.field(key, ours[key], other[key]) for key in ("version", "name")]
    for section in _SECTIONS:
        lines += [
            show.field(f"{section}.{key}", value, other[section][key])
            for key, value in ours[section].items()
        ]
    lines += _privacy_lines(show, ours["privacy"], other["privacy"])
    lines += _member_lines(show, mine, theirs)
    return [line for line in lines if line]


class _Shower:
    def __init__(self, mine_label: str, theirs_label: str) -> None:
        self.mine = mine_label
        self.theirs = theirs_label

    def field(self, path: str, ours: object, other: object) -> str:
        if ours == other and type(ours) is type(other):
            return ""
        return f"{path}: {_value(ours)} ({self.mine}) vs {_value(other)} ({self.theirs})"


def _value(value: object) -> str:
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key} = {_value(item)}" for key, item in value.items()) + "}"
    return repr(value)


def _privacy_lines(
    show: _Shower, ours: Mapping[str, Any] | None, other: Mapping[str, Any] | None
) -> list[str]:
    if ours is None and other is None:
        return []
    if ours is None or other is None:
        described = [
            "absent (no differential privacy)" if table is None else f"[privacy] {_value(table)}"
            for table in (ours, other)
        ]
        return [f"privacy: {described[0]} ({show.mine}) vs {described[1]} ({show.theirs})"]
    return [show.field(f"privacy.{key}", value, other[key]) for key, value in ours.items()]


def _member_lines(show: _Shower, mine: Federation, theirs: Federation) -> list[str]:
    lines: list[str] = []
    ours = {member.id: member for member in mine.members}
    other = {member.id: member for member in theirs.members}
    for member_id in sorted(ours.keys() | other.keys()):
        a, b = ours.get(member_id), other.get(member_id)
        if a is None and b is not None:
            lines.append(
                f"members: {_holder(show.theirs)} lists {member_id!r} ({b.fingerprint}) which "
                f"{_holder(show.mine)} does not"
            )
        elif b is None and a is not None:
            lines.append(
                f"members: {_holder(show.mine)} lists {member_id!r} ({a.fingerprint}) which "
                f"{_holder(show.theirs)} does not"
            )
        elif a is not None and b is not None:
            lines += _same_member_lines(show, a, b)
    return lines


def _same_member_lines(show: _Shower, a: Member, b: Member) -> list[str]:
    if a.fingerprint != b.fingerprint:
        return [
            f"members.{a.id}.fingerprint: {a.fingerprint} ({show.mine}) vs {b.fingerprint} "
            f"({show.theirs})"
        ]
    if a.certificate_pem != b.certificate_pem:
        return [
            f"members.{a.id}.certificate: same key {a.fingerprint} but another certificate "
            f"(SHA-256 {_certificate_hash(a)} ({show.mine}) vs {_certificate_hash(b)} "
            f"({show.theirs}))"
        ]
    return []


def _certificate_hash(member: Member) -> str:
    """The usual certificate fingerprint (SHA-256 of the DER certificate), shortened."""
    return load_certificate(member.certificate_pem).fingerprint(hashes.SHA256()).hex()[:16] + "..."


def _holder(label: str) -> str:
    return "your file" if label == "yours" else label


__all__ = ["describe_differences"]
