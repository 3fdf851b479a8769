"""Tables of the program layer beyond delivery (migration 0006): the benefits register's
measurements and figures, and the load of people shared between projects.

``benefit_measurements`` is imported data (``programview benefits import``); the others are
written by the transform and keep history like ``project_metrics``: one row per key and
``as_of_date`` for benefits (a rerun on the same day replaces the day's rows), one row per
person, project and ``week`` for the load (a rerun in the same week replaces the week's rows).
BI tools read them through ``v_benefits``, ``v_program_benefits`` and ``v_resource_load``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from programview.warehouse.models import Base


class BenefitMeasurement(Base):
    """One measured value of a benefit on a day (``programview benefits import``)."""

    __tablename__ = "benefit_measurements"
    benefit_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    imported_at: Mapped[datetime] = mapped_column(DateTime)


class BenefitMetric(Base):
    """A benefit as of one day: the latest measurement, realisation and money value. The
    register's values (baseline, target, …) are kept as they were that day."""

    __tablename__ = "benefit_metrics"
    benefit_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    as_of_date: Mapped[date] = mapped_column(Date, primary_key=True)
    as_of: Mapped[datetime] = mapped_column(DateTime)
    program_key: Mapped[str] = mapped_column(String(100))
    benefit_name: Mapped[str | None] = mapped_column(String(300))
    unit: Mapped[str | None] = mapped_column(String(50))
    baseline: Mapped[float] = mapped_column(Float)
    target: Mapped[float] = mapped_column(Float)
    target_date: Mapped[date] = mapped_column(Date)
    value_per_unit: Mapped[float | None] = mapped_column(Float)
    value: Mapped[float | None] = mapped_column(Float)
    measured_on: Mapped[date | None] = mapped_column(Date)
    realisation_pct: Mapped[float | None] = mapped_column(Float)
    expected_pct: Mapped[float | None] = mapped_column(Float)
    on_track: Mapped[bool | None] = mapped_column(Boolean)
    realised_value: Mapped[float | None] = mapped_column(Float)
    notes: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_benefit_metrics_as_of_date", "as_of_date"),)


class ProgramBenefit(Base):
    """A program's benefits as of one day: money realised, actual cost, ROI, and the
    ``benefits`` health component (scored whether or not it is weighted)."""

    __tablename__ = "program_benefits"
    program_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    as_of_date: Mapped[date] = mapped_column(Date, primary_key=True)
    as_of: Mapped[datetime] = mapped_column(DateTime)
    benefits: Mapped[int] = mapped_column(Integer)
    benefits_measured: Mapped[int] = mapped_column(Integer)
    benefits_on_track: Mapped[int] = mapped_column(Integer)
    realised_value: Mapped[float | None] = mapped_column(Float)
    actual_cost: Mapped[float | None] = mapped_column(Float)
    roi: Mapped[float | None] = mapped_column(Float)
    benefits_behind_pct: Mapped[float | None] = mapped_column(Float)
    benefits_score: Mapped[float | None] = mapped_column(Float)
    benefits_weight: Mapped[float] = mapped_column(Float)
    benefits_explanation: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_program_benefits_as_of_date", "as_of_date"),)


class ResourceLoad(Base):
    """What one person carries in one project in one week (the week's latest run)."""

    __tablename__ = "resource_load"
    person_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    week: Mapped[date] = mapped_column(Date, primary_key=True)  # the Monday
    project_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    person: Mapped[str] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(300))
    #: How the person's identities were joined: alias | email | account | name.
    matched_by: Mapped[str] = mapped_column(String(20))
    program_key: Mapped[str | None] = mapped_column(String(100))
    as_of: Mapped[datetime] = mapped_column(DateTime)
    in_progress_items: Mapped[int] = mapped_column(Integer)
    active_sprint_items: Mapped[int] = mapped_column(Integer)
    active_sprint_points: Mapped[float] = mapped_column(Float)
    #: Whether the project has an active sprint (the contention rule needs two such).
    project_sprint_active: Mapped[bool] = mapped_column(Boolean)
    __table_args__ = (Index("ix_resource_load_week", "week"),)
