"""A member's memory of what it sent: the defence against a rolled-back or replaying PS.

The PS operator can restore an old sealed checkpoint and restart the enclave, or replay a round
with different sets of members, to collect several contributions of one member for the same round
and difference them. The enclave cannot tell (its state is what the host hands it), so the member
keeps its own record, in a small state file written atomically (write, fsync, rename):

* per (federation hash, Paillier public key): the highest round it submitted to (its mark) and the
  exact bytes of that upload;
* it never produces a new contribution for a round at or below its mark;
* asked again for the round of its mark (a PS resumed while that round was in flight), it sends
  the byte-identical stored upload and nothing else, so the enclave learns nothing new;
* asked for a round below its mark, it stops with :class:`~homolr.errors.RollbackError`.

A PS that starts over with a fresh key is a new run: the sums it can decrypt are the same
functions of the same data and plan, so it learns nothing that the first run did not release.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from homolr.errors import DataError, RollbackError
from homolr.files import write_atomically
from homolr.protocol.messages import Update, UpdateHeader

FORMAT = "homolr-member-state"
VERSION = 1


class ReplayGuard:
    """The member's high-water mark for one (federation, key) and its last upload."""

    def __init__(self, directory: Path, member: str, federation_hash: bytes, key_id: str) -> None:
        self.directory = Path(directory)
        self.member = member
        self.path = self.directory / f"member-{member}.state.json"
        self._run_key = f"{federation_hash.hex() or 'open'}:{key_id}"
        self._document = self._load()

    @property
    def mark(self) -> int:
        """The highest round submitted under this federation and key (-1: none)."""
        entry = self._document["runs"].get(self._run_key)
        return -1 if entry is None else int(entry["round"])

    def before_round(self, round_: int) -> Update | None:
        """What to do when the PS asks for ``round_``.

        Returns None when a fresh contribution may be made, or the stored upload to send again.

        Raises
        ------
        RollbackError
            ``round_`` is below the mark, or equals it without a stored upload.
        """
        mark = self.mark
        if round_ > mark:
            return None
        if round_ == mark:
            stored = self._stored()
            if stored is not None:
                return stored
        raise RollbackError(
            f"the PS asks member '{self.member}' for round {round_}, but this member already "
            f"submitted round {mark} under this federation and key: the PS was rolled back or is "
            "replaying rounds. Nothing new was sent. (State file: "
            f"{self.path})"
        )

    def record(self, update: Update) -> None:
        """Store ``update`` as the new mark, durably, before it is sent.

        The state file is re-read under an exclusive lock and merged, so several runs of one
        member sharing a state directory never erase each other's marks.
        """
        round_ = update.header.round
        self.directory.mkdir(parents=True, exist_ok=True)
        with _locked(self.path):
            self._document = self._load()
            if round_ <= self.mark:
                raise RollbackError(
                    f"member '{self.member}' refuses a second contribution for round {round_}"
                )
            digest = hashlib.sha256(self._run_key.encode()).hexdigest()[:16]
            name = f"member-{self.member}.{digest}.bin"
            write_atomically(self.directory / name, update.payload)
            entry = {
                "round": round_,
                "header": asdict(update.header),
                "payload_file": name,
                "payload_sha256": hashlib.sha256(update.payload).hexdigest(),
            }
            runs = {**self._document["runs"], self._run_key: entry}
            document = {**self._document, "runs": runs}
            write_atomically(self.path, json.dumps(document, sort_keys=True, indent=1).encode())
            self._document = document

    def _stored(self) -> Update | None:
        entry = self._document["runs"].get(self._run_key)
        if entry is None:
            return None
        try:
            payload = (self.directory / entry["payload_file"]).read_bytes()
        except OSError:
            return None
        if hashlib.sha256(payload).hexdigest() != entry["payload_sha256"]:
            return None
        return Update(UpdateHeader(**entry["header"]), payload)

    def _load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"format": FORMAT, "version": VERSION, "member": self.member, "runs": {}}
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{self.path}: cannot read the member state: {exc}") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{self.path}, line {exc.lineno}: the member state is not valid JSON ({exc.msg}); "
                "it protects this member against replayed rounds, so it is not ignored"
            ) from None
        if (
            not isinstance(document, dict)
            or document.get("format") != FORMAT
            or document.get("version") != VERSION
            or not isinstance(document.get("runs"), dict)
        ):
            raise DataError(f"{self.path}: not a {FORMAT} v{VERSION} file")
        for run_key, entry in document["runs"].items():
            _check_entry(entry, f"{self.path}: entry {run_key!r}")
        return document


def _check_entry(entry: object, where: str) -> None:
    """Raise DataError unless ``entry`` is a well-formed mark (round, header, payload file)."""
    problem = ""
    if not isinstance(entry, dict):
        problem = "is not an object"
    elif not isinstance(entry.get("round"), int) or isinstance(entry.get("round"), bool):
        problem = "has no integer 'round'"
    elif not isinstance(entry.get("payload_file"), str) or not isinstance(
        entry.get("payload_sha256"), str
    ):
        problem = "has no 'payload_file' / 'payload_sha256'"
    else:
        header = entry.get("header")
        names = set(UpdateHeader.__dataclass_fields__)
        if not isinstance(header, dict) or set(header) != names:
            problem = f"has a 'header' without exactly the fields {sorted(names)}"
    if problem:
        raise DataError(
            f"{where} {problem}; the file protects this member against replayed rounds, so it is "
            "not ignored (restore it from a backup)"
        )


@contextlib.contextmanager
def _locked(state_file: Path) -> Iterator[None]:
    """An exclusive lock on the state directory (the file is replaced atomically, so the lock is
    on the directory itself)."""
    fd = os.open(state_file.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


__all__ = ["ReplayGuard"]
