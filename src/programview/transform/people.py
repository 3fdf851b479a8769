"""One person across tools: the identities of ``people`` (and the assignee names of work
items) joined into persons, by the config's ``[[people]]`` entries and by e-mail.

Rules, first match wins (docs/metrics.md, "Shared people"):

1. **alias**: an identity whose warehouse id (``jira:5b10…``), ``source:login``, native id,
   login, display name or e-mail equals (case-insensitively) a ``[[people]]`` entry's name,
   one of its ``emails`` or one of its ``aliases`` is that entry's person;
2. **email**: otherwise identities with the same e-mail (any tool) are one person, shown
   with the fullest display name among them;
3. **account**: otherwise each identity is a person of its own (one tool account);
4. **name**: a work item whose connector gives only an assignee name, no people row, is
   the person of that name in its source (or the ``[[people]]`` entry the name matches).

Two tools' accounts are never joined on a name or login alone: two "Sam Lee"s at one company
are two people until the config says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from programview.transform._sql import fetch

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from programview.config import PersonConfig


@dataclass(frozen=True, slots=True)
class Identity:
    """The person behind an identity. ``person_id`` is stable: the configured name, the
    e-mail, or the tool account's warehouse id."""

    person_id: str
    person: str
    email: str | None
    matched_by: str  # alias | email | account | name
    wip_limit: int | None = None


@dataclass(frozen=True, slots=True)
class PersonRow:
    id: str
    source_name: str
    native_id: str
    display_name: str | None
    email: str | None
    login: str | None

    def tokens(self) -> set[str]:
        values = (
            self.id,
            f"{self.source_name}:{self.login}" if self.login else None,
            self.native_id,
            self.login,
            self.display_name,
            self.email,
        )
        return {v.strip().lower() for v in values if v and v.strip()}


class People:
    """Resolves identities to persons (see the module docstring)."""

    def __init__(self, rows: Iterable[PersonRow], entries: Sequence[PersonConfig]) -> None:
        self.entries = list(entries)
        self._by_token: dict[str, PersonConfig] = {}
        for entry in self.entries:
            for token in entry.tokens():
                self._by_token.setdefault(token, entry)
        self.rows = {r.id: r for r in rows}
        # the display name of an e-mail: the fullest of its identities' ("Ben Berg" over
        # "Ben B."; ties alphabetical), so it does not depend on which tool synced first
        self._email_name: dict[str, str] = {}
        for row in self.rows.values():
            if row.email and row.display_name:
                email = row.email.strip().lower()
                best = self._email_name.get(email)
                name = row.display_name
                if best is None or (-len(name), name) < (-len(best), best):
                    self._email_name[email] = name
        self._by_source_name: dict[tuple[str, str], PersonRow] = {}
        for row in sorted(self.rows.values(), key=lambda r: r.id):
            if row.display_name:
                self._by_source_name.setdefault((row.source_name, row.display_name), row)

    def _entry(self, tokens: set[str]) -> PersonConfig | None:
        hits = [self._by_token[t] for t in tokens if t in self._by_token]
        if not hits:
            return None
        return min(hits, key=self.entries.index)  # the first entry in the file wins

    def _configured(self, entry: PersonConfig) -> Identity:
        email = entry.emails[0].strip().lower() if entry.emails else None
        return Identity(entry.name, entry.name, email, "alias", entry.wip_limit)

    def of_row(self, row: PersonRow) -> Identity:
        entry = self._entry(row.tokens())
        if entry is not None:
            return self._configured(entry)
        if row.email:
            email = row.email.strip().lower()
            return Identity(f"email:{email}", self._email_name.get(email, email), email, "email")
        name = row.display_name or row.login or row.native_id
        return Identity(row.id, name, None, "account")

    def of_assignee(self, source: str, assignee_id: str | None, name: str | None) -> Identity:
        """The person a work item is assigned to: by its people row when the connector gave
        one, else by the assignee name."""
        row = self.rows.get(assignee_id) if assignee_id else None
        if row is None and name:
            row = self._by_source_name.get((source, name))
        if row is not None:
            return self.of_row(row)
        text = (name or assignee_id or "").strip()
        entry = self._entry({text.lower()})
        if entry is not None:
            return self._configured(entry)
        return Identity(f"{source}:name:{text}", text, None, "name")


def load_people(conn: Connection, entries: Sequence[PersonConfig]) -> People:
    rows = fetch(conn, "SELECT id, source_name, native_id, display_name, email, login FROM people")
    return People((PersonRow(*r) for r in rows), entries)
