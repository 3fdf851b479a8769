"""Importing real project actuals (``programview costs import FILE.csv``).

The file has a header row with ``project,date,amount`` (any order, extra columns ignored):
one amount spent on a project on a day. Imported amounts replace worklog hours x hourly
rate as the project's actual cost (docs/metrics.md, "Budget"). Several rows for the same
project and day are added up (two invoices on one day); importing a file again replaces
the amounts of the days it contains, so re-running an import is harmless.

The whole file is checked before anything is written: every bad row is reported with its
line number, and nothing is imported unless all rows are good.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy.engine import Engine

from programview.errors import ProgramviewError
from programview.warehouse import db

REQUIRED = ("project", "date", "amount")


class CostsImportError(ProgramviewError):
    """The costs file is unusable; ``problems`` holds one message per bad line."""

    def __init__(self, problems: list[str], path: str | None = None) -> None:
        self.problems = problems
        self.path = path
        where = f"{path}: " if path else ""
        if len(problems) == 1:
            text = f"{where}{problems[0]}"
        else:
            text = f"{where}{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class CostsImported:
    rows: int  # data rows read
    days: int  # (project, day) amounts written
    projects: tuple[str, ...]
    total: float


def parse_costs(
    text: str, projects: Collection[str], *, path: str | None = None
) -> tuple[dict[tuple[str, date], float], int]:
    """Validate the CSV text; return the amount per (project, day) and the number of data
    rows, or raise :class:`CostsImportError` listing every bad line."""
    reader = csv.reader(io.StringIO(text))
    problems: list[str] = []
    header: list[str] | None = None
    amounts: dict[tuple[str, date], float] = {}
    known = set(projects)
    data_rows = 0
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in row]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise CostsImportError(
                    [
                        f"line {line}: header must name the columns project, date, amount "
                        f"(missing {', '.join(missing)}; got {', '.join(header) or 'nothing'})"
                    ],
                    path,
                )
            idx = {c: header.index(c) for c in REQUIRED}
            continue
        data_rows += 1
        cells = {c: (row[i].strip() if i < len(row) else "") for c, i in idx.items()}
        errors: list[str] = []
        project = cells["project"]
        if not project:
            errors.append("project is empty")
        elif project not in known:
            shown = ", ".join(sorted(known)) or "none"
            errors.append(f"unknown project {project!r} (configured projects: {shown})")
        try:
            day = date.fromisoformat(cells["date"])
        except ValueError:
            errors.append(f"date {cells['date']!r} is not a date like 2024-03-31")
            day = None
        try:
            amount = float(cells["amount"])
            if not math.isfinite(amount):
                raise ValueError
        except ValueError:
            errors.append(f"amount {cells['amount']!r} is not a number like 1250.50")
            amount = None
        if errors:
            problems.append(f"line {line}: {'; '.join(errors)}")
        elif day is not None and amount is not None:
            amounts[(project, day)] = amounts.get((project, day), 0.0) + amount
    if header is None:
        raise CostsImportError(["the file is empty (expected a header project,date,amount)"], path)
    if problems:
        raise CostsImportError(problems, path)
    return amounts, data_rows


def import_costs(engine: Engine, file: str | Path, projects: Collection[str]) -> CostsImported:
    """Read ``file`` (UTF-8, an Excel byte-order mark is fine), check every row against the
    configured ``projects``, and upsert the amounts into ``project_costs`` in one transaction.
    """
    path = str(file)
    try:
        text = Path(file).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CostsImportError(["file not found"], path) from None
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise CostsImportError([problem], path) from None
    except OSError as exc:
        raise CostsImportError([f"cannot read the file: {exc.strerror}"], path) from None
    amounts, data_rows = parse_costs(text, projects, path=path)
    rows = [{"project_key": p, "date": d, "amount": a} for (p, d), a in amounts.items()]
    with db.transaction(engine) as conn:
        db.upsert(conn, "project_costs", rows)
    return CostsImported(
        rows=data_rows,
        days=len(rows),
        projects=tuple(sorted({p for p, _ in amounts})),
        total=sum(amounts.values()),
    )
