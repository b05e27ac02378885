"""The federation.toml template: every key documented, defaults true, real members load."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from homolr.errors import ConfigError
from homolr.federation import (
    SCHEMA,
    TEMPLATE,
    federation_hash,
    federation_member_snippet,
    load_federation,
    parse_federation,
    render_template,
)
from tests.federation.support import Identities, base_document, parse

_OPTIONAL_KEY = re.compile(r"^# ([a-z0-9_]+ = .*)$")


def _members(identities: Identities, *ids: str) -> list[tuple[str, str, bytes]]:
    return [
        (i, identities[i].fingerprint, identities[i].certificate_pem) for i in ids or identities
    ]


def _uncommented(text: str, *, privacy: bool = True) -> str:
    """Remove '# ' from every commented-out key (and the [privacy] header if ``privacy``)."""
    lines: list[str] = []
    in_privacy = False
    for line in text.splitlines():
        if line == "# [privacy]":
            in_privacy = True
            lines.append("[privacy]" if privacy else line)
            continue
        if line.startswith("[") or line.startswith("# [[members]]"):
            in_privacy = False
        match = _OPTIONAL_KEY.match(line)
        lines.append(match.group(1) if match and (privacy or not in_privacy) else line)
    return "\n".join(lines) + "\n"


def _sections(text: str) -> dict[str, list[str]]:
    """Key names per table, commented out or not, in the order they appear."""
    found: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        header = re.match(r"^(?:# )?\[\[?([a-z]+)\]\]?$", line)
        if header:
            current = header.group(1)
            found.setdefault(current, [])
            continue
        key = re.match(r"^(?:# )?([a-z0-9_]+) = ", line)
        if key and key.group(1) not in found[current]:
            found[current].append(key.group(1))
    return found


def test_init_template_is_the_placeholder_rendering() -> None:
    assert render_template() == TEMPLATE
    assert 'name = "my-consortium"' in TEMPLATE


@pytest.mark.parametrize("with_members", [False, True])
def test_every_schema_key_appears_with_a_comment(
    identities: Identities, with_members: bool
) -> None:
    text = render_template("wisconsin", _members(identities) if with_members else ())
    sections = _sections(text)
    for table, keys in SCHEMA.items():
        expected = [key for key in keys if key not in SCHEMA] if table == "" else list(keys)
        assert sorted(sections[table]) == sorted(expected), table
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^(?:# )?[a-z0-9_]+ = ", line) and not line.startswith(("id =", "# id =")):
            if line.startswith(
                ("fingerprint =", "certificate =", "# fingerprint =", "# certificate =")
            ):
                continue  # member blocks are explained once, above them
            above = lines[index - 1]
            assert above.startswith("# ") and not re.match(r"^# [a-z0-9_]+ = ", above), line


def test_template_lines_fit_the_style(identities: Identities) -> None:
    for text in (TEMPLATE, render_template("wisconsin", _members(identities))):
        assert all(len(line) <= 100 for line in text.splitlines())
        assert "\t" not in text and text.endswith("\n")


def test_template_without_members_explains_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "federation.toml"
    path.write_text(TEMPLATE)
    with pytest.raises(
        ConfigError,
        match=r"members: at least 2 \[\[members\]\] are required, found 0; each member runs `homolr keygen --id <id>`",
    ):
        load_federation(path)
    assert "homolr keygen" in TEMPLATE and "OUT OF BAND" in TEMPLATE and "quote" in TEMPLATE


def test_template_with_real_members_loads(identities: Identities, tmp_path: Path) -> None:
    text = render_template(
        "wisconsin", _members(identities, "host", "guest"), features=["a", "b", "c"]
    )
    path = tmp_path / "federation.toml"
    path.write_text(text)
    federation = load_federation(path)
    assert federation.name == "wisconsin"
    assert federation.member_ids == ("guest", "host")
    assert federation.validation.features == ("a", "b", "c")
    assert parse_federation(text, "t") == federation


def test_commented_values_are_the_defaults(identities: Identities) -> None:
    """Uncommenting every optional key (but privacy) must not change the meaning: the
    template's shown values are the true defaults, derived from the same constants."""
    text = render_template("wisconsin", _members(identities, "guest", "host"))
    with_defaults = _uncommented(text, privacy=False)
    assert with_defaults != text
    assert federation_hash(parse_federation(with_defaults, "t")) == federation_hash(
        parse_federation(text, "t")
    )
    document = base_document(identities, ["guest", "host"])
    assert parse_federation(text, "t") == parse(document)


def test_uncommenting_everything_sets_every_key_validly(identities: Identities) -> None:
    text = _uncommented(render_template("wisconsin", _members(identities, "guest", "host")))
    raw = tomllib.loads(text)
    assert set(raw) == set(SCHEMA[""])
    for table in ("plan", "participation", "deadlines", "validation", "privacy"):
        assert set(raw[table]) == set(SCHEMA[table]), table
    assert all(set(member) == set(SCHEMA["members"]) for member in raw["members"])
    federation = parse_federation(text, "t")
    assert federation.privacy is not None and federation.privacy.level == "record"


def test_aggregate_defaults_are_stated() -> None:
    prose = " ".join(line.removeprefix("#") for line in TEMPLATE.splitlines()).split()
    text = " ".join(prose)
    assert 'Default 400 in mode "encrypted", 100 in mode "aggregate".' in text
    assert 'Default "equal" in mode "encrypted", "samples" in mode "aggregate".' in text
    assert 'Default 0.01 in mode "encrypted", 0.003 in mode "aggregate".' in text


def test_render_template_refuses_bad_input(identities: Identities) -> None:
    members = _members(identities, "guest", "host")
    with pytest.raises(ConfigError, match="name '-bad'"):
        render_template("-bad", members)
    with pytest.raises(ConfigError, match=r"validation.features\[1\]: 'x0' appears twice"):
        render_template("ok", members, features=["x0", "x0"])
    wrong = [("guest", identities["host"].fingerprint, identities["guest"].certificate_pem)]
    with pytest.raises(ConfigError, match="is not that of the certificate's key"):
        render_template("ok", wrong)
    with pytest.raises(ConfigError, match="members: at least 2"):
        render_template("ok", members[:1])
    with pytest.raises(ConfigError, match=r"members\[1\].id: 'guest' also names members\[0\]"):
        render_template("ok", [members[0], members[0]])


def test_member_snippet_is_a_pasteable_members_block(identities: Identities) -> None:
    guest = identities["guest"]
    snippet = federation_member_snippet("guest", guest.certificate_pem, guest.fingerprint)
    assert snippet.startswith("[[members]]\n")
    parsed = tomllib.loads(snippet)
    assert parsed == {
        "members": [
            {
                "id": "guest",
                "fingerprint": guest.fingerprint,
                "certificate": guest.certificate_pem.decode(),
            }
        ]
    }
    with pytest.raises(ConfigError, match="common name 'guest' differs from the member id 'host'"):
        federation_member_snippet("host", guest.certificate_pem, guest.fingerprint)
    with pytest.raises(ConfigError, match="is not that of the certificate's key"):
        federation_member_snippet("guest", guest.certificate_pem, identities["host"].fingerprint)
