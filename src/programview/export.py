"""``programview export``: the ``v_*`` views as a spreadsheet, CSV or Parquet files.

Why: program managers still live in spreadsheets. The export is the views, not a copy of
the report: the same rows a BI tool sees, typed (dates as dates, timestamps as timestamps,
flags as booleans, numbers as numbers), so a pivot table or a filter works without cleaning.
In the xlsx each view is one sheet whose number formats follow ``programview.formatting``
(a fraction shows as a percentage, money with thousands separators), while the cells keep
the warehouse's exact values.

Only the warehouse is read (through the views), so it runs with the read-only BI role and
needs no source credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from programview.errors import ProgramviewError
from programview.formatting import field

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMATS", "ExportResult", "UnknownViewError", "export_views", "read_view"]

FORMATS = ("xlsx", "csv", "parquet")
#: Sheet order: the views a program manager opens first come first; others follow by name.
PREFERRED = (
    "v_program_health",
    "v_project_metrics",
    "v_health_inputs",
    "v_dependency_alerts",
    "v_blocker_checks",
    "v_projects",
    "v_releases",
    "v_sprints",
    "v_work_items",
    "v_dependencies",
    "v_sync_runs",
)
#: Columns that are true/false (SQLite hands them back as 0/1).
BOOLEAN_COLUMNS = frozenset(
    {
        "on_time",
        "cross_project",
        "released_at_inferred",
        "archived",
        "not_delivered",
        "holds",
        "start_date_inferred",
        "on_track",
        "project_sprint_active",
    }
)
#: Excel number formats per ``programview.formatting`` unit.
EXCEL_FORMATS = {
    "fraction": "0%",
    "percent": '0.0"%"',
    "days": "0.0",
    "points": "0.0",
    "ratio": "0.00",
    "score": "0.0",
    "count": "0",
    "money": "#,##0",
    "number": "0.0",
    "weight": "0.00",
}
DATE_FORMAT = "yyyy-mm-dd"
TIMESTAMP_FORMAT = "yyyy-mm-dd hh:mm:ss"


class UnknownViewError(ProgramviewError):
    """``--view`` names a view the warehouse does not have."""


class UnknownProgramError(ProgramviewError):
    """``--program`` names a program the warehouse does not know."""


@dataclass(frozen=True)
class ExportResult:
    format: str
    paths: list[Path]
    rows: dict[str, int]  # view -> rows written


def available_views(engine: Engine) -> list[str]:
    """The ``v_*`` views of the warehouse, in export order."""
    names = {v for v in sa.inspect(engine).get_view_names() if v.startswith("v_")}
    first = [v for v in PREFERRED if v in names]
    return first + sorted(names - set(first))


def _is_timestamp(column: str) -> bool:
    return column.endswith(("_at", "as_of"))


def _is_date(column: str) -> bool:
    return column.endswith("_date")


def read_view(engine: Engine, view: str, program: str | None = None) -> pd.DataFrame:
    """One view as a typed DataFrame, filtered to ``program`` where the view can be.

    A view with ``program_key`` keeps that program's rows; ``v_dependencies`` (by project)
    keeps links with either side in one of the program's projects; other views (sync runs)
    are not program data and come whole.
    """
    import pandas as pd

    with engine.connect() as conn:
        columns = [c["name"] for c in sa.inspect(conn).get_columns(view)]
        sql, params = f"SELECT * FROM {view}", {}
        if program is not None and "program_key" in columns:
            sql, params = sql + " WHERE program_key = :p", {"p": program}
        elif program is not None and "blocked_project_key" in columns:
            sql += (
                " WHERE blocked_project_key IN (SELECT project_key FROM v_projects "
                "WHERE program_key = :p) OR blocking_project_key IN (SELECT project_key "
                "FROM v_projects WHERE program_key = :p)"
            )
            params = {"p": program}
        result = conn.execute(sa.text(sql), params)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The same types on SQLite and PostgreSQL, by the views' naming convention."""
    import pandas as pd

    for column in frame.columns:
        values = frame[column]
        if column in BOOLEAN_COLUMNS:
            frame[column] = values.map(lambda v: None if v is None else bool(v)).astype("boolean")
        elif _is_timestamp(column):
            frame[column] = pd.to_datetime(values.map(_naive), errors="coerce")
        elif _is_date(column):
            frame[column] = pd.to_datetime(values.map(_day), errors="coerce")
        elif values.map(lambda v: isinstance(v, Decimal)).any():
            frame[column] = pd.to_numeric(values.map(_plain_number), errors="coerce")
    return frame


def _naive(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    return value


def _day(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        return value[:10]
    return value


def _plain_number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def export_views(
    engine: Engine,
    format: str,
    output: str | Path | None = None,
    *,
    views: Sequence[str] = (),
    program: str | None = None,
) -> ExportResult:
    """Write ``views`` (default: every ``v_*`` view) as ``format``.

    xlsx: one workbook, one sheet per view (default ``programview-export.xlsx``). csv and
    parquet: one file per view in the folder ``output`` (default ``programview-export``), or
    exactly ``output`` when it names a ``.csv`` / ``.parquet`` file and one view is chosen.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r} (choose from {', '.join(FORMATS)})")
    present = available_views(engine)
    unknown = [v for v in views if v not in present]
    if unknown:
        raise UnknownViewError(
            f"no view {', '.join(map(repr, unknown))} in the warehouse (views: "
            f"{', '.join(present) or 'none: run `programview db upgrade`'})"
        )
    if program is not None:
        _check_program(engine, program)
    chosen = list(dict.fromkeys(views)) or present
    frames = {v: read_view(engine, v, program) for v in chosen}
    rows = {v: len(f) for v, f in frames.items()}
    if format == "xlsx":
        target = Path(output or "programview-export.xlsx")
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_xlsx(frames, target)
        return ExportResult(format, [target], rows)
    suffix = f".{format}"
    single = output is not None and str(output).endswith(suffix) and len(frames) == 1
    folder = Path(output or "programview-export")
    paths = []
    for view, typed in frames.items():
        path = folder if single else folder / f"{view}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = _calendar_dates(typed)
        if format == "csv":
            frame.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
        else:
            frame.to_parquet(path, index=False, engine="pyarrow")
        paths.append(path)
    return ExportResult(format, paths, rows)


def _check_program(engine: Engine, program: str) -> None:
    with engine.connect() as conn:
        known = sorted(
            {
                r[0]
                for r in conn.execute(
                    sa.text(
                        "SELECT program_key FROM v_projects WHERE program_key IS NOT NULL "
                        "UNION SELECT program_key FROM v_program_health"
                    )
                )
            }
        )
    if program not in known:
        raise UnknownProgramError(
            f"no program {program!r} in the warehouse (programs: {', '.join(known) or 'none'})"
        )


def _calendar_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """``*_date`` columns as calendar dates (CSV ``2026-11-03``, Parquet ``date32``)."""
    out = frame.copy()
    for column in out.columns:
        if _is_date(column):
            out[column] = out[column].dt.date
    return out


def _write_xlsx(frames: dict[str, pd.DataFrame], target: Path) -> None:
    """One sheet per view: bold frozen header, a filter, typed cells with number formats."""
    import pandas as pd
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    with pd.ExcelWriter(target, engine="openpyxl") as writer:
        for view, frame in frames.items():
            sheet_name = view[:31]
            out = _calendar_dates(frame)
            out.to_excel(writer, sheet_name=sheet_name, index=False)
            sheet = writer.sheets[sheet_name]
            sheet.freeze_panes = "A2"
            if len(out.columns):
                sheet.auto_filter.ref = sheet.dimensions
            for cell in sheet[1]:
                cell.font = Font(bold=True)
            for i, column in enumerate(out.columns, start=1):
                letter = get_column_letter(i)
                number_format = _excel_format(column, frame[column])
                if number_format:
                    for (cell,) in sheet.iter_rows(min_row=2, min_col=i, max_col=i):
                        if cell.value is not None:
                            cell.number_format = number_format
                width = max(
                    [len(str(column))]
                    + [len(str(v)) for v in out[column].head(200) if v is not None]
                )
                sheet.column_dimensions[letter].width = min(max(width + 2, 8), 60)


def _excel_format(column: str, values: pd.Series) -> str | None:
    import pandas as pd

    if _is_timestamp(column):
        return TIMESTAMP_FORMAT
    if _is_date(column):
        return DATE_FORMAT
    if column in BOOLEAN_COLUMNS or not pd.api.types.is_numeric_dtype(values):
        return None
    spec = field(column)
    if spec.unit == "number" and pd.api.types.is_integer_dtype(values):
        return "0"
    return EXCEL_FORMATS.get(spec.unit)
