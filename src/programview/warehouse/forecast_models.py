"""Tables of delivery forecasts and flow (migration 0009), written by the transform, history
one row per key and ``as_of_date`` (or ``day``): ``release_forecasts`` and
``project_forecasts`` (Monte Carlo, transform/forecast.py) and ``flow_daily`` (the
cumulative-flow data, transform/flow.py). BI tools read ``v_release_forecast``,
``v_project_forecast`` and ``v_flow_daily``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from programview.warehouse.models import Base


class _ForecastColumns:
    """What a release's and a project's forecast rows share (docs/warehouse.md)."""

    as_of_date: Mapped[date] = mapped_column(Date, primary_key=True)
    as_of: Mapped[datetime] = mapped_column(DateTime)
    program_key: Mapped[str | None] = mapped_column(String(100))
    remaining_points: Mapped[float] = mapped_column(Float)
    remaining_items: Mapped[int] = mapped_column(Integer)
    #: points | items: what the history counted (items when the team does not estimate).
    unit: Mapped[str | None] = mapped_column(String(10))
    #: sprints | weeks: what one step of the history is.
    history: Mapped[str | None] = mapped_column(String(10))
    #: The sampled values, newest first, comma-separated (to reproduce the figures).
    history_values: Mapped[str | None] = mapped_column(Text)
    step_days: Mapped[int | None] = mapped_column(Integer)
    trials: Mapped[int | None] = mapped_column(Integer)
    p50_date: Mapped[date | None] = mapped_column(Date)
    p85_date: Mapped[date | None] = mapped_column(Date)
    p95_date: Mapped[date | None] = mapped_column(Date)
    #: P85 of the team's own work, before what blocks it.
    own_p85_date: Mapped[date | None] = mapped_column(Date)
    probability_on_time: Mapped[float | None] = mapped_column(Float)
    driving_blocker_key: Mapped[str | None] = mapped_column(String(300))
    driving_blocker_release: Mapped[str | None] = mapped_column(String(300))
    driving_blocker_p85_date: Mapped[date | None] = mapped_column(Date)
    notes: Mapped[str | None] = mapped_column(Text)


class ReleaseForecast(_ForecastColumns, Base):
    """Monte Carlo forecast of one open release on one day (``v_release_forecast``)."""

    __tablename__ = "release_forecasts"
    release_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    project_key: Mapped[str] = mapped_column(String(100))
    release_name: Mapped[str | None] = mapped_column(String(300))
    due_date: Mapped[date | None] = mapped_column(Date)
    #: Releases in a blocking cycle with this one (those links were ignored).
    blocking_cycle: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_release_forecasts_as_of_date", "as_of_date"),)


class ProjectForecast(_ForecastColumns, Base):
    """Monte Carlo forecast of all of one project's open work on one day."""

    __tablename__ = "project_forecasts"
    project_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    end_date: Mapped[date | None] = mapped_column(Date)
    __table_args__ = (Index("ix_project_forecasts_as_of_date", "as_of_date"),)


class FlowDay(Base):
    """One project's flow on one day (``v_flow_daily``): WIP by status category at the end
    of the day, arrivals and departures during it."""

    __tablename__ = "flow_daily"
    project_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    as_of: Mapped[datetime] = mapped_column(DateTime)
    todo_items: Mapped[int] = mapped_column(Integer)
    in_progress_items: Mapped[int] = mapped_column(Integer)
    done_items: Mapped[int] = mapped_column(Integer)
    arrivals: Mapped[int] = mapped_column(Integer)
    departures: Mapped[int] = mapped_column(Integer)
    ageing_wip_items: Mapped[int] = mapped_column(Integer)
    #: The project's cycle-time P85 (days) the ageing count used; NULL: nothing is ageing.
    ageing_threshold_days: Mapped[float | None] = mapped_column(Float)
    __table_args__ = (Index("ix_flow_daily_day", "day"),)
