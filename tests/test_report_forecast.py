"""The report's forecast and flow sections: at-risk releases first with their driving
blockers, a burn-up with the forecast fan per release, a cumulative flow chart per project."""

from __future__ import annotations

import json

from test_transform_forecast import AS_OF, two_projects

from programview.report import build_report, render_html, render_json, render_text


def test_at_risk_releases_come_first_with_their_driving_blocker(engine) -> None:  # type: ignore[no-untyped-def]
    s = two_projects(engine)
    s.item("PAY-40", status="in_progress", created="2024-06-01", started="2024-06-01")
    s.run(AS_OF)
    report = build_report(engine)
    data = json.loads(render_json(report))
    order = [(r["release_name"], r["at_risk"]) for r in data["forecasts"]]
    assert order == [("Payments 2.0", True), ("Core 1.1", False)]
    first = data["forecasts"][0]
    assert (first["p85_date"], first["driving_blocker_key"]) == ("2024-06-29", "CORE-1")
    assert first["scope"] == [{"date": "2024-01-01", "points": 10.0}]

    text = render_text(report)
    assert "DELIVERY FORECASTS (1 of 2 open releases at risk)" in text
    assert (
        "! PAY Payments 2.0: P85 2024-06-29 vs due 2024-06-25; driven by CORE-1 in Core "
        "1.1, P85 2024-06-29"
    ) in " ".join(text.split())
    assert text.index("! PAY Payments 2.0") < text.index("CORE Core 1.1")

    flow = {f["project_key"]: f for f in data["flow"]}
    assert flow["PAY"]["latest"]["in_progress_items"] == 1
    assert len(flow["PAY"]["days"]) == 90

    page = render_html(report)
    assert "Delivery forecasts" in page and "Forecast - PAY Payments 2.0" in page
    assert "<title>P85 2024-06-29</title>" in page  # the fan's P85 line
    assert "CFD - PAY" in page and "CFD - CORE" in page
