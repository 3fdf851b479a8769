"""Health scores: metric values -> component scores -> one 0-100 score, each with a sentence.

Pure functions (no database), so every rule is easy to test and to explain:

* a metric scores 0-100 piecewise-linearly between its configured (value, score) points and
  flat outside them (``[health.thresholds]``);
* a component (schedule, delivery, quality, budget, dependencies) is the mean of its metrics
  that have a value; with none it is NULL ("no data"), never a made-up 100;
* the health score is the weighted mean of the components that have a score, the weights
  renormalised over those present; green >= ``health.green``, amber >= ``health.amber``,
  else red;
* a program's component is the plain mean of its projects' component scores (projects with
  no data for it are left out), and its score is weighted from those components as above;
  program-level components (``benefits``) are scored from the program's own figures.

Every component carries a sentence naming the values, the thresholds they fell between and
the component's weight, so a dashboard can say *why* a program is amber.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from programview.transform.settings import COMPONENTS, HealthConfig

LABELS: dict[str, str] = {
    "spi": "SPI",
    "on_time_delivery_rate": "on-time delivery rate",
    "forecast_slip_days": "forecast finish vs end date (days late)",
    "velocity_cv": "velocity variation (CV)",
    "say_do_ratio": "say/do ratio",
    "defect_density": "defect density (bugs per 100 points)",
    "open_bug_trend_pct": "open bug trend (% change)",
    "cpi": "CPI",
    "alert_weight": "open dependency alerts (severity-weighted)",
    "benefits_behind_pct": "benefits behind plan (percentage points, mean)",
}


def _num(value: float) -> str:
    return f"{round(value, 2):g}"


def piecewise(points: Sequence[tuple[float, float]], value: float) -> float:
    """Linear interpolation between (value, score) points, flat beyond the first/last."""
    if value <= points[0][0]:
        return float(points[0][1])
    for (x0, s0), (x1, s1) in zip(points, points[1:], strict=False):
        if value <= x1:
            return s0 + (s1 - s0) * (value - x0) / (x1 - x0)
    return float(points[-1][1])


def position(points: Sequence[tuple[float, float]], value: float) -> str:
    """Which thresholds ``value`` fell between, for the explanation."""
    (fx, fs), (lx, ls) = points[0], points[-1]
    if value <= fx:
        return f"at or below {_num(fx)}→{_num(fs)}"
    if value >= lx:
        return f"at or above {_num(lx)}→{_num(ls)}"
    for (x0, s0), (x1, s1) in zip(points, points[1:], strict=False):
        if value <= x1:
            return f"between {_num(x0)}→{_num(s0)} and {_num(x1)}→{_num(s1)}"
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class MetricScore:
    """One metric's part in a project's component: what the report shows to the bottom."""

    metric: str
    value: float | None
    score: float | None
    points: tuple[tuple[float, float], ...]
    reason: str | None = None  # why there is no value


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    score: float | None
    weight: float
    sentence: str
    #: The metrics behind a project's component, or a program-level one's (``benefits``);
    #: empty for a program's mean of its projects.
    metrics: tuple[MetricScore, ...] = ()


@dataclass(frozen=True, slots=True)
class Health:
    score: float | None
    status: str | None  # green | amber | red; None without any component
    components: dict[str, Component] = field(default_factory=dict)

    @property
    def explanation(self) -> str:
        """One sentence per component, one per line."""
        return "\n".join(c.sentence for c in self.components.values())

    def component_score(self, name: str) -> float | None:
        comp = self.components.get(name)
        return comp.score if comp else None


def _status(score: float | None, cfg: HealthConfig) -> str | None:
    if score is None:
        return None
    if score >= cfg.green:
        return "green"
    if score >= cfg.amber:
        return "amber"
    return "red"


def _overall(components: Mapping[str, Component], cfg: HealthConfig) -> Health:
    present = [c for c in components.values() if c.score is not None and c.weight > 0]
    total = sum(c.weight for c in present)
    score = (
        round(sum(c.weight * (c.score or 0.0) for c in present) / total, 2) if total > 0 else None
    )
    return Health(score=score, status=_status(score, cfg), components=dict(components))


def _dropped(title: str, why: str, weight: float) -> str:
    return (
        f"{title}: no data ({why}); its weight {_num(weight)} is dropped and the other "
        "weights renormalised."
    )


def score_project(
    values: Mapping[str, float | None],
    reasons: Mapping[str, str],
    cfg: HealthConfig,
) -> Health:
    """Health of one project from its metric values (``None`` = no data, with ``reasons``)."""
    components = {
        name: score_component(name, metrics, values, reasons, cfg)
        for name, metrics in COMPONENTS.items()
    }
    return _overall(components, cfg)


def score_component(
    name: str,
    metrics: Sequence[str],
    values: Mapping[str, float | None],
    reasons: Mapping[str, str],
    cfg: HealthConfig,
) -> Component:
    """One component: the mean score of its ``metrics`` that have a value, with its sentence
    and the metrics behind it (``v_health_inputs``)."""
    weight = cfg.weights.get(name, 0.0)
    scores: list[float] = []
    parts: list[str] = []
    details: list[MetricScore] = []
    for metric in metrics:
        value = values.get(metric)
        label = LABELS[metric]
        points = tuple((float(x), float(y)) for x, y in cfg.points(metric))
        if value is None:
            why = reasons.get(metric, "not available")
            parts.append(f"{label}: no data ({why})")
            details.append(MetricScore(metric, None, None, points, why))
            continue
        score = piecewise(points, value)
        scores.append(score)
        details.append(MetricScore(metric, float(value), score, points))
        parts.append(f"{label} {_num(value)} scores {_num(score)} ({position(points, value)})")
    title = name.capitalize()
    if not scores:
        sentence = _dropped(title, "; ".join(parts), weight)
        return Component(name, None, weight, sentence, tuple(details))
    comp_score = round(sum(scores) / len(scores), 2)
    sentence = f"{title} {_num(comp_score)}/100 (weight {_num(weight)}): " + "; ".join(parts) + "."
    return Component(name, comp_score, weight, sentence, tuple(details))


def score_program(
    projects: Mapping[str, Health],
    cfg: HealthConfig,
    extra: Mapping[str, Component] | None = None,
) -> Health:
    """Health of a program: each component is the mean of its projects' component scores.

    ``extra`` holds program-level components (``benefits``), scored from the program's own
    figures; they join the weighted score like the others."""
    components: dict[str, Component] = {}
    for name in COMPONENTS:
        weight = cfg.weights.get(name, 0.0)
        title = name.capitalize()
        with_data = {
            key: s
            for key, h in sorted(projects.items())
            if (s := h.component_score(name)) is not None
        }
        missing = sorted(set(projects) - set(with_data))
        if not with_data:
            why = "no project has data" if projects else "the program has no projects"
            components[name] = Component(name, None, weight, _dropped(title, why, weight))
            continue
        score = round(sum(with_data.values()) / len(with_data), 2)
        listed = ", ".join(f"{k} {_num(s)}" for k, s in with_data.items())
        tail = f"; no data for {', '.join(missing)}" if missing else ""
        sentence = f"{title} {_num(score)}/100 (weight {_num(weight)}): mean of {listed}{tail}."
        components[name] = Component(name, score, weight, sentence)
    components.update(extra or {})
    return _overall(components, cfg)
