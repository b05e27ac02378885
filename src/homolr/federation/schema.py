"""The federation file, format version 1: its schema, defaults and validation.

A consortium agrees on one federation file out of band; every member keeps a copy and the PS
binds the hash of its canonical form (:mod:`homolr.federation.canonical`) into its quote. This
module turns a parsed document (a TOML file, or the canonical JSON the PS sends) into a
:class:`Federation` whose fields are complete and normalized: every default filled in, floats as
floats, members sorted by id, certificates as normalized PEM, fingerprints in lower case. Two
files that mean the same thing give equal :class:`Federation` values.

Sections and keys (every key in the schema, nothing else, anywhere)::

    version, name                                    required
    [plan]           mode key_bits iterations learning_rate schedule alpha init_weight
                     eval_every frac_bits weighting batch_size local_epochs tolerance seed
                     standardize                     all optional (defaults: default_plan(mode))
    [participation]  policy min_workers accept_subset_leakage accept_two_member_leakage
    [deadlines]      join_s round_s first_round_s
    [validation]     features (required) label sha256
    [privacy]        level delta clip (required) epsilon noise_multiplier model_bound
    [[members]]      id fingerprint certificate      (>= 2 members)

Every error is a :class:`~homolr.errors.ConfigError` whose message starts with the source (the
file name) and the field path, e.g. ``federation.toml: participation.min_workers: ...``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from homolr.errors import ConfigError
from homolr.federation.certificates import (
    certificate_pem_text,
    check_member_certificate,
    fingerprint_of,
    normalize_fingerprint,
    validate_member_id,
)
from homolr.learning import AGGREGATE_DEFAULTS, ENCRYPTED_DEFAULTS, SCHEDULES
from homolr.protocol.messages import MAX_ENCRYPTED_FRAC_BITS

Mode = Literal["encrypted", "aggregate"]
Weighting = Literal["equal", "samples"]
Policy = Literal["all", "quorum"]
PrivacyLevel = Literal["member", "record"]

#: The only format version this module reads.
FEDERATION_VERSION: Final = 1
MODES: tuple[Mode, ...] = ("encrypted", "aggregate")
WEIGHTINGS: tuple[Weighting, ...] = ("equal", "samples")
POLICIES: tuple[Policy, ...] = ("all", "quorum")
PRIVACY_LEVELS: tuple[PrivacyLevel, ...] = ("member", "record")
KEY_BITS: tuple[int, ...] = (2048, 3072, 4096)
#: Fewest members a federation can have: the key holder never decrypts one member's data.
MIN_MEMBERS: Final = 2
#: Largest integer any field takes (the canonical JSON writes integers exactly up to 2**53).
MAX_INTEGER: Final = 2**53 - 1
#: Longest deadline: a week (keeps every timer computation far from overflow).
MAX_DEADLINE_S: Final = 7 * 24 * 3600.0

#: Every key of format version 1, per table ("" is the top level, "members" each [[members]]).
SCHEMA: Mapping[str, tuple[str, ...]] = {
    "": (
        "version",
        "name",
        "plan",
        "participation",
        "deadlines",
        "validation",
        "privacy",
        "members",
    ),
    "plan": (
        "mode",
        "key_bits",
        "iterations",
        "learning_rate",
        "schedule",
        "alpha",
        "init_weight",
        "eval_every",
        "frac_bits",
        "weighting",
        "batch_size",
        "local_epochs",
        "tolerance",
        "seed",
        "standardize",
    ),
    "participation": (
        "policy",
        "min_workers",
        "accept_subset_leakage",
        "accept_two_member_leakage",
    ),
    "deadlines": ("join_s", "round_s", "first_round_s"),
    "validation": ("features", "label", "sha256", "bounds"),
    "privacy": (
        "level",
        "epsilon",
        "delta",
        "clip",
        "noise_multiplier",
        "model_bound",
        "min_samples",
    ),
    "members": ("id", "fingerprint", "certificate"),
}

#: Plan defaults that do not depend on the mode (the mode's tuned values override these).
BASE_PLAN_DEFAULTS: Mapping[str, object] = {
    "key_bits": 2048,
    "eval_every": 10,
    "frac_bits": 24,
    "batch_size": 64,
    "local_epochs": 2,
    "tolerance": 0.0,
    "init_weight": 0.0,
    "seed": 0,
    "standardize": False,
}
PARTICIPATION_DEFAULTS: Mapping[str, object] = {
    "policy": "all",
    "accept_subset_leakage": False,
    "accept_two_member_leakage": False,
}
DEADLINE_DEFAULTS: Mapping[str, object] = {
    "join_s": 300.0,
    "round_s": 60.0,
    "first_round_s": 300.0,
}
VALIDATION_DEFAULTS: Mapping[str, object] = {"label": "y", "sha256": "", "bounds": []}
#: Allowed consortium names.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_RESERVED_COLUMNS = ("id",)
_T = TypeVar("_T")


@dataclass(frozen=True)
class PlanSection:
    """``[plan]``: everything that makes all members train identically."""

    mode: Mode
    key_bits: int
    iterations: int
    learning_rate: float
    schedule: str
    alpha: float
    init_weight: float
    eval_every: int
    frac_bits: int
    weighting: Weighting
    batch_size: int
    local_epochs: int
    tolerance: float
    seed: int
    standardize: bool


@dataclass(frozen=True)
class ParticipationSection:
    """``[participation]``: whose updates a round needs (``min_workers`` is n for ``all``)."""

    policy: Policy
    min_workers: int
    accept_subset_leakage: bool
    accept_two_member_leakage: bool


@dataclass(frozen=True)
class DeadlinesSection:
    """``[deadlines]``, in seconds."""

    join_s: float
    round_s: float
    first_round_s: float


@dataclass(frozen=True)
class ValidationSection:
    """``[validation]``: feature names in wire order, label column, pinned CSV hash."""

    features: tuple[str, ...]
    label: str
    sha256: str
    bounds: tuple[float, ...] = ()


@dataclass(frozen=True)
class PrivacySection:
    """``[privacy]``: differential privacy (None fields were not given)."""

    level: PrivacyLevel
    epsilon: float | None
    delta: float
    clip: float
    noise_multiplier: float | None
    model_bound: float | None
    min_samples: int | None = None


@dataclass(frozen=True)
class Member:
    """One member: its id, the fingerprint of its key, its self-signed certificate (PEM)."""

    id: str
    fingerprint: str
    certificate_pem: bytes


@dataclass(frozen=True)
class Federation:
    """A validated, normalized federation file (members sorted by id).

    Build it with :func:`~homolr.federation.load_federation`,
    :func:`~homolr.federation.parse_federation` or
    :func:`~homolr.federation.federation_from_canonical`: the constructor does not validate.
    """

    version: int
    name: str
    plan: PlanSection
    participation: ParticipationSection
    deadlines: DeadlinesSection
    validation: ValidationSection
    privacy: PrivacySection | None
    members: tuple[Member, ...]

    @property
    def member_ids(self) -> tuple[str, ...]:
        """Member ids, sorted."""
        return tuple(member.id for member in self.members)

    def member(self, member_id: str) -> Member | None:
        """The member called ``member_id``, or None."""
        return next((member for member in self.members if member.id == member_id), None)

    def member_by_fingerprint(self, fingerprint: str) -> Member | None:
        """The member whose key has ``fingerprint`` (either hex case), or None."""
        wanted = fingerprint.lower()
        return next((member for member in self.members if member.fingerprint == wanted), None)

    def to_document(self) -> dict[str, Any]:
        """The normalized document: every key present, privacy None when absent.

        This is what :func:`~homolr.federation.canonical_bytes` serializes; certificates appear
        as PEM text.
        """
        return {
            "version": self.version,
            "name": self.name,
            "plan": dataclasses.asdict(self.plan),
            "participation": dataclasses.asdict(self.participation),
            "deadlines": dataclasses.asdict(self.deadlines),
            "validation": {
                "features": list(self.validation.features),
                "label": self.validation.label,
                "sha256": self.validation.sha256,
                "bounds": list(self.validation.bounds),
            },
            "privacy": None if self.privacy is None else dataclasses.asdict(self.privacy),
            "members": [
                {
                    "id": member.id,
                    "fingerprint": member.fingerprint,
                    "certificate": member.certificate_pem.decode("ascii"),
                }
                for member in self.members
            ],
        }


def plan_defaults(mode: Mode) -> Mapping[str, object]:
    """Every ``[plan]`` default for ``mode``: the tuned values of :mod:`homolr.learning`
    (``ENCRYPTED_DEFAULTS`` / ``AGGREGATE_DEFAULTS``) over :data:`BASE_PLAN_DEFAULTS`."""
    tuned = ENCRYPTED_DEFAULTS if mode == "encrypted" else AGGREGATE_DEFAULTS
    return {**BASE_PLAN_DEFAULTS, **tuned, "mode": mode}


def federation_from_document(document: Mapping[str, object], source: str) -> Federation:
    """Validate a parsed federation document and return the normalized :class:`Federation`.

    Parameters
    ----------
    document
        The TOML document as ``tomllib`` returns it (or the canonical JSON with its nulls
        removed).
    source
        Where it came from (a file name); starts every error message.

    Raises
    ------
    ConfigError
        ``"<source>: <field path>: <problem>"`` for the first rule the document breaks;
        unknown keys are all listed at once.
    """
    unknown = sorted(_unknown_keys(document))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            "(federation file version 1; check the spelling against `homolr init`'s template)"
        )
    top = _Table(document, "", source)
    version = top.integer("version")
    if version != FEDERATION_VERSION:
        raise top.error("version", f"unsupported version {version}; this homolr reads version 1")
    name = top.matching(
        "name",
        NAME_PATTERN,
        "1-64 characters from letters, digits, '_', '.', '-', starting with a letter or digit",
    )
    members = _members(top.array_of_tables("members"), source)
    plan = _plan(top.table("plan"))
    participation = _participation(top.table("participation"), len(members))
    deadlines = _deadlines(top.table("deadlines"))
    validation = _validation(top.table("validation", required=True))
    privacy_table = top.table("privacy") if "privacy" in document else None
    privacy = None if privacy_table is None else _privacy(privacy_table)
    federation = Federation(
        version=version,
        name=name,
        plan=plan,
        participation=participation,
        deadlines=deadlines,
        validation=validation,
        privacy=privacy,
        members=members,
    )
    _check_cross_fields(federation, source)
    return federation


# --- tables -----------------------------------------------------------------------------------

_MISSING: Final = object()


class _Table:
    """Typed reads from one TOML table; every error names ``source`` and the field path."""

    def __init__(
        self,
        data: Mapping[str, object],
        path: str,
        source: str,
        defaults: Mapping[str, object] | None = None,
    ) -> None:
        self.data = data
        self.path = path
        self.source = source
        self.defaults = defaults or {}

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.field(key)}: {problem}")

    def raw(self, key: str) -> object:
        if key in self.data:
            return self.data[key]
        value = self.defaults.get(key, _MISSING)
        if value is _MISSING:
            raise self.error(key, "required key is missing")
        return value

    def has(self, key: str) -> bool:
        return key in self.data

    def integer(self, key: str, *, low: int = -MAX_INTEGER, high: int = MAX_INTEGER) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {_describe(value)}")
        if not low <= value <= high:
            raise self.error(key, f"{value} is out of range; expected {_range(low, high)}")
        return value

    def real(self, key: str, check: Callable[[float], bool], expected: str) -> float:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {_describe(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the largest double
            number = math.inf
        if not math.isfinite(number) or not check(number):
            raise self.error(key, f"{value} is out of range; expected {expected}")
        return number

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_describe(value)}")
        return value

    def string(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_describe(value)}")
        return value

    def choice(self, key: str, choices: Sequence[_T]) -> _T:
        value = self.raw(key)
        for allowed in choices:
            if type(value) is type(allowed) and value == allowed:
                return allowed
        listed = ", ".join(
            repr(choice) if isinstance(choice, str) else str(choice) for choice in choices
        )
        raise self.error(key, f"{_describe(value)} is not allowed; expected one of {listed}")

    def matching(self, key: str, pattern: re.Pattern[str], expected: str) -> str:
        value = self.string(key)
        if not pattern.fullmatch(value):
            raise self.error(key, f"{value!r} is not allowed; expected {expected}")
        return value

    def table(self, key: str, *, required: bool = False) -> _Table:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            if required:
                raise self.error(key, "required table is missing")
            value = {}
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a table [{self.field(key)}], got {_describe(value)}")
        return _Table(value, self.field(key), self.source)

    def array_of_tables(self, key: str) -> list[_Table]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise self.error(key, f"expected [[{key}]] tables, got {_describe(value)}")
        return [
            _Table(item, f"{self.field(key)}[{index}]", self.source)
            for index, item in enumerate(value)
        ]


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _range(low: int, high: int) -> str:
    if high == MAX_INTEGER:
        return f">= {low}" if low != -MAX_INTEGER else "an integer"
    return f"{low} <= value <= {high}"


def _unknown_keys(document: Mapping[str, object]) -> Iterator[str]:
    yield from (key for key in document if key not in SCHEMA[""])
    for section in ("plan", "participation", "deadlines", "validation", "privacy"):
        table = document.get(section)
        if isinstance(table, Mapping):
            yield from (f"{section}.{key}" for key in table if key not in SCHEMA[section])
    members = document.get("members")
    if isinstance(members, list):
        for index, member in enumerate(members):
            if isinstance(member, Mapping):
                yield from (
                    f"members[{index}].{key}" for key in member if key not in SCHEMA["members"]
                )


# --- sections ---------------------------------------------------------------------------------


def _plan(given: _Table) -> PlanSection:
    mode = _Table(given.data, given.path, given.source, {"mode": "encrypted"}).choice("mode", MODES)
    table = _Table(given.data, given.path, given.source, plan_defaults(mode))
    positive = "finite and > 0"
    return PlanSection(
        mode=mode,
        key_bits=table.choice("key_bits", KEY_BITS),
        iterations=table.integer("iterations", low=1),
        learning_rate=table.real("learning_rate", lambda value: value > 0, positive),
        schedule=table.choice("schedule", SCHEDULES),
        alpha=table.real("alpha", lambda value: value >= 0, "finite and >= 0"),
        init_weight=table.real("init_weight", lambda _value: True, "finite"),
        eval_every=table.integer("eval_every", low=1),
        frac_bits=table.integer("frac_bits", low=8, high=48),
        weighting=table.choice("weighting", WEIGHTINGS),
        batch_size=table.integer("batch_size", low=0),
        local_epochs=table.integer("local_epochs", low=1),
        tolerance=table.real(
            "tolerance", lambda value: value >= 0, "finite and >= 0 (0 = never stop early)"
        ),
        seed=table.integer("seed", low=0),
        standardize=table.boolean("standardize"),
    )


def _participation(given: _Table, n_members: int) -> ParticipationSection:
    table = _Table(given.data, given.path, given.source, PARTICIPATION_DEFAULTS)
    policy = table.choice("policy", POLICIES)
    if policy == "quorum" and not table.has("min_workers"):
        raise table.error(
            "min_workers",
            f"required when policy = 'quorum': the fewest members whose updates a round sums "
            f"(2 <= min_workers <= {n_members})",
        )
    min_workers = n_members
    if table.has("min_workers"):
        min_workers = table.integer("min_workers")
        if not MIN_MEMBERS <= min_workers <= n_members:
            raise table.error(
                "min_workers",
                f"{min_workers} is out of range; expected 2 <= min_workers <= {n_members} (the "
                "number of members): the key holder never decrypts a single member's update",
            )
    return ParticipationSection(
        policy=policy,
        min_workers=min_workers if policy == "quorum" else n_members,
        accept_subset_leakage=table.boolean("accept_subset_leakage"),
        accept_two_member_leakage=table.boolean("accept_two_member_leakage"),
    )


def _deadlines(given: _Table) -> DeadlinesSection:
    table = _Table(given.data, given.path, given.source, DEADLINE_DEFAULTS)
    expected = f"seconds, finite, > 0 and <= {MAX_DEADLINE_S:.0f} (a week)"

    def seconds(key: str) -> float:
        return table.real(key, lambda value: 0 < value <= MAX_DEADLINE_S, expected)

    return DeadlinesSection(
        join_s=seconds("join_s"), round_s=seconds("round_s"), first_round_s=seconds("first_round_s")
    )


def validation_section(table: Mapping[str, object], source: str) -> ValidationSection:
    """Validate a ``[validation]`` table on its own (e.g. features for a template)."""
    return _validation(_Table(table, "validation", source))


def _validation(given: _Table) -> ValidationSection:
    table = _Table(given.data, given.path, given.source, VALIDATION_DEFAULTS)
    label = _column_name(table, "label", table.string("label"))
    raw = table.raw("features")
    if not isinstance(raw, list) or not raw:
        raise table.error(
            "features", f"expected a non-empty array of feature names, got {_describe(raw)}"
        )
    features: list[str] = []
    for index, name in enumerate(raw):
        if not isinstance(name, str):
            raise table.error(f"features[{index}]", f"expected a string, got {_describe(name)}")
        _column_name(table, f"features[{index}]", name)
        if name in features:
            raise table.error(f"features[{index}]", f"{name!r} appears twice")
        if name == label:
            raise table.error(f"features[{index}]", f"{name!r} is the label column")
        features.append(name)
    sha256 = table.string("sha256")
    if sha256 and not _SHA256_HEX.fullmatch(sha256):
        raise table.error(
            "sha256", f"{sha256!r}: expected 64 hex digits (SHA-256 of the CSV's bytes) or ''"
        )
    raw_bounds = table.raw("bounds")
    if not isinstance(raw_bounds, list) or (raw_bounds and len(raw_bounds) != len(features)):
        raise table.error(
            "bounds",
            f"expected [] or one bound per feature ({len(features)}), got {_describe(raw_bounds)}",
        )
    bounds = tuple(
        _Table({"bound": value}, table.field(f"bounds[{index}]"), table.source).real(
            "bound", lambda value: value > 0, "finite and > 0"
        )
        for index, value in enumerate(raw_bounds)
    )
    return ValidationSection(
        features=tuple(features), label=label, sha256=sha256.lower(), bounds=bounds
    )


def _column_name(table: _Table, key: str, name: str) -> str:
    if not name or name != name.strip() or any(ord(char) < 0x20 or char == "\x7f" for char in name):
        raise table.error(
            key,
            f"{name!r}: a column name must be non-empty, without surrounding whitespace or "
            "control characters (CSV headers are read stripped)",
        )
    if name in _RESERVED_COLUMNS:
        raise table.error(key, f"{name!r} is the CSV's row id column")
    return name


def _privacy(table: _Table) -> PrivacySection:
    level = table.choice("level", PRIVACY_LEVELS)

    def optional_positive(key: str) -> float | None:
        return (
            table.real(key, lambda value: value > 0, "finite and > 0") if table.has(key) else None
        )

    epsilon = optional_positive("epsilon")
    noise_multiplier = optional_positive("noise_multiplier")
    if epsilon is None and noise_multiplier is None:
        raise table.error(
            "epsilon",
            "give epsilon (the privacy target the noise is calibrated to) or noise_multiplier "
            "(a fixed noise scale), or both",
        )
    delta = table.real("delta", lambda value: 0 < value < 1, "0 < delta < 1")
    clip = table.real("clip", lambda value: value > 0, "finite and > 0")
    if level == "record" and clip <= 1:
        raise table.error(
            "clip",
            f"{clip!r}: at level 'record' clip bounds ||[1, x]|| of a row with its bias entry 1, "
            "so it must be > 1",
        )
    model_bound = optional_positive("model_bound")
    if level == "record" and model_bound is None:
        raise table.error(
            "model_bound",
            "required when level = 'record': the radius the key holder projects the model onto "
            "bounds each record's influence",
        )
    if level == "member" and model_bound is not None:
        raise table.error("model_bound", "only used when level = 'record'; remove it")
    min_samples = None
    if table.has("min_samples"):
        min_samples = table.integer("min_samples", low=2)
    if level == "record" and min_samples is None:
        raise table.error(
            "min_samples",
            "required when level = 'record': the fewest rows any member holds (members refuse to "
            "train below it); one row's influence on a step is bounded by lr / min_samples",
        )
    if level == "member" and min_samples is not None:
        raise table.error("min_samples", "only used when level = 'record'; remove it")
    return PrivacySection(
        level=level,
        epsilon=epsilon,
        delta=delta,
        clip=clip,
        noise_multiplier=noise_multiplier,
        model_bound=model_bound,
        min_samples=min_samples,
    )


def _members(tables: list[_Table], source: str) -> tuple[Member, ...]:
    if len(tables) < MIN_MEMBERS:
        raise ConfigError(
            f"{source}: members: at least {MIN_MEMBERS} [[members]] are required, found "
            f"{len(tables)}; each member runs `homolr keygen --id <id>` and sends the [[members]] "
            "block it prints, to be pasted into this file"
        )
    members: list[Member] = []
    first_index: dict[str, int] = {}
    by_fingerprint: dict[str, Member] = {}
    for index, table in enumerate(tables):
        member = _member(table)
        if member.id in first_index:
            raise table.error("id", f"{member.id!r} also names members[{first_index[member.id]}]")
        twin = by_fingerprint.get(member.fingerprint)
        if twin is not None:
            raise table.error(
                "fingerprint",
                f"{member.id!r} has the same key as {twin.id!r}; each member makes its own key "
                "pair",
            )
        first_index[member.id] = index
        by_fingerprint[member.fingerprint] = member
        members.append(member)
    return tuple(sorted(members, key=lambda member: member.id))


def _member(table: _Table) -> Member:
    member_id = table.string("id")
    try:
        validate_member_id(member_id)
    except ConfigError as error:
        raise table.error("id", str(error)) from None
    try:
        fingerprint = normalize_fingerprint(table.string("fingerprint"))
    except ConfigError as error:
        raise table.error("fingerprint", f"{error} (member {member_id!r})") from None
    try:
        certificate = check_member_certificate(table.string("certificate"), member_id)
    except ConfigError as error:
        raise table.error("certificate", f"member {member_id!r}: {error}") from None
    actual = fingerprint_of(certificate)
    if actual != fingerprint:
        raise table.error(
            "fingerprint",
            f"member {member_id!r}: {fingerprint} is not the fingerprint of the certificate's "
            f"key ({actual}); copy both from the member's `homolr keygen` output",
        )
    return Member(
        id=member_id,
        fingerprint=fingerprint,
        certificate_pem=certificate_pem_text(certificate).encode("ascii"),
    )


def _check_cross_fields(federation: Federation, source: str) -> None:
    participation, privacy, plan = federation.participation, federation.privacy, federation.plan
    if plan.standardize and not federation.validation.bounds:
        raise ConfigError(
            f"{source}: validation.bounds: required when plan.standardize = true: the largest "
            "absolute value each feature may take, in the data's units (the statistics round "
            "encodes sums and sums of squares at a fixed scale that these bounds keep in range; "
            "members refuse rows beyond them)"
        )
    if plan.standardize and privacy is not None:
        raise ConfigError(
            f"{source}: plan.standardize: not with [privacy]: the statistics round would release "
            "feature sums without noise, outside the privacy budget; standardise beforehand"
        )
    if (
        participation.policy == "quorum"
        and privacy is None
        and not participation.accept_subset_leakage
    ):
        raise ConfigError(
            f"{source}: participation.accept_subset_leakage: policy = 'quorum' without [privacy] "
            "lets rounds sum different subsets of members, and the difference of two such sums "
            "is one member's update; add a [privacy] table or set accept_subset_leakage = true "
            "to accept this"
        )
    if (
        plan.mode == "aggregate"
        and len(federation.members) == 2
        and privacy is None
        and not participation.accept_two_member_leakage
    ):
        raise ConfigError(
            f"{source}: participation.accept_two_member_leakage: in mode 'aggregate' with "
            "exactly 2 members each member receives the average w of both models and can "
            "compute the other's model as 2w - own; add a [privacy] table or set "
            "accept_two_member_leakage = true to accept this"
        )
    if privacy is not None and privacy.level == "record" and plan.mode != "encrypted":
        raise ConfigError(
            f"{source}: privacy.level: 'record' needs plan.mode = 'encrypted' (the key holder "
            f"adds per-record noise to the decrypted Taylor step); the plan's mode is "
            f"{plan.mode!r}"
        )
    if privacy is not None and privacy.level == "member" and plan.mode != "aggregate":
        raise ConfigError(
            f"{source}: privacy.level: 'member' needs plan.mode = 'aggregate' (it clips and "
            f"noises each member's model update); the plan's mode is {plan.mode!r}"
        )
    if privacy is not None and plan.weighting != "equal":
        raise ConfigError(
            f"{source}: plan.weighting: {plan.weighting!r} with [privacy]; differential privacy "
            "needs weighting = 'equal' (with sample weights one member's influence scales with its "
            "row count, which only the operator would report)"
        )
    if plan.mode == "encrypted" and plan.frac_bits > MAX_ENCRYPTED_FRAC_BITS:
        raise ConfigError(
            f"{source}: plan.frac_bits: {plan.frac_bits} in mode 'encrypted'; at most "
            f"{MAX_ENCRYPTED_FRAC_BITS} (a member's update is at scale 2 x frac_bits in a 64-bit "
            "slot, which must leave room for the weights)"
        )


__all__ = [
    "BASE_PLAN_DEFAULTS",
    "DEADLINE_DEFAULTS",
    "FEDERATION_VERSION",
    "KEY_BITS",
    "MAX_DEADLINE_S",
    "MAX_INTEGER",
    "MIN_MEMBERS",
    "MODES",
    "NAME_PATTERN",
    "PARTICIPATION_DEFAULTS",
    "POLICIES",
    "PRIVACY_LEVELS",
    "SCHEMA",
    "VALIDATION_DEFAULTS",
    "WEIGHTINGS",
    "DeadlinesSection",
    "Federation",
    "Member",
    "Mode",
    "ParticipationSection",
    "PlanSection",
    "Policy",
    "PrivacyLevel",
    "PrivacySection",
    "ValidationSection",
    "Weighting",
    "federation_from_document",
    "plan_defaults",
    "validation_section",
]
