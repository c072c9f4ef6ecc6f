"""Quality page: agreement between annotators, with the AI and with gold; final labels."""

from __future__ import annotations

from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotate.access import RESEARCH, project_for
from annotate.models import ReportRun
from annotate.services.labels import (
    METHODS,
    LabelsError,
    label_run_latest,
    label_run_start,
    labels_summary,
)
from annotate.services.reports import (
    ReportError,
    report_ensure,
    report_latest,
    report_params,
    report_run_latest,
    report_run_start,
)
from annotate.views.polling import polled_partial

CHART_W, CHART_H = 720, 140


def _bars(points: list[tuple[date, float]], *, max_value: float | None = None) -> dict:
    """Geometry of a server-rendered SVG bar chart (no JavaScript): one bar per point."""
    if not points:
        return {"bars": [], "width": CHART_W, "height": CHART_H}
    top = max_value if max_value is not None else max(v for _, v in points) or 1
    step = CHART_W / len(points)
    bars = [
        {
            "x": round(n * step + 1, 1),
            "width": round(max(step - 2, 1), 1),
            "height": round((CHART_H - 20) * v / top, 1),
            "y": round(CHART_H - 20 - (CHART_H - 20) * v / top, 1),
            "label": day.isoformat(),
            "value": v,
        }
        for n, (day, v) in enumerate(points)
    ]
    return {
        "bars": bars,
        "width": CHART_W,
        "height": CHART_H,
        "first": points[0][0].isoformat(),
        "last": points[-1][0].isoformat(),
        "top": top,
    }


def _points(rows: list[dict], key: str, value: str) -> list[tuple[date, float]]:
    """A stored report's series (ISO dates in JSON) back as (date, value) for `_bars`."""
    return [(date.fromisoformat(row[key]), row[value]) for row in rows]


@login_required
def quality(request: HttpRequest, slug: str) -> HttpResponse:
    """The latest stored quality report; computing it runs on a worker, never in the request.
    Opening the page starts a run when there is no report yet or the data changed since."""
    project, _ = project_for(request.user, slug, need=RESEARCH)
    params = report_params(project=project, kind=ReportRun.Kind.QUALITY)
    report_ensure(project=project, params=params, user=request.user)
    stored = report_latest(project=project, params=params)
    report = stored.payload if stored else None
    context = {
        "project": project,
        "stored": stored,
        "report": report,
        "report_run": report_run_latest(project=project, kind=ReportRun.Kind.QUALITY),
        "labels": labels_summary(project=project),
        "methods": METHODS,
        "label_run": label_run_latest(project=project),
        "per_day": _bars(_points(report["per_day"], "day", "judgments")[-90:]) if report else None,
        "per_week": (
            _bars(_points(report["per_week_agreement"], "week", "agreement")[-52:], max_value=1.0)
            if report
            else None
        ),
    }
    return render(request, "annotate/quality.html", context)


@login_required
@require_POST
def quality_report_compute(request: HttpRequest, slug: str) -> HttpResponse:
    """Start (re)computing the quality report on a worker; the page then follows the run."""
    project, _ = project_for(request.user, slug, need=RESEARCH)
    try:
        run = report_run_start(
            project=project, params={"kind": ReportRun.Kind.QUALITY}, user=request.user
        )
    except ReportError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Computing the quality report (run #{run.pk}).")
    return redirect("quality", project.slug)


@login_required
def quality_report_run(request: HttpRequest, slug: str) -> HttpResponse:
    """The latest quality-report run; HTMX polls it while it runs and stops (286) when done."""
    project, _ = project_for(request.user, slug, need=RESEARCH)
    run = report_run_latest(project=project, kind=ReportRun.Kind.QUALITY)
    return polled_partial(
        request,
        "annotate/quality.html#report_run",
        {"project": project, "report_run": run},
        finished=run is None or run.is_finished,
        reload_page=run is not None and run.status == ReportRun.Status.SUCCEEDED,
    )


@login_required
@require_POST
def quality_compute(request: HttpRequest, slug: str) -> HttpResponse:
    """Start computing the final labels on a worker; the page then follows the run."""
    project, _ = project_for(request.user, slug, need=RESEARCH)
    try:
        run = label_run_start(
            project=project, method=request.POST.get("method", "majority"), user=request.user
        )
    except LabelsError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Computing final labels by {run.method} (run #{run.pk}).")
    return redirect("quality", project.slug)


@login_required
def quality_label_run(request: HttpRequest, slug: str) -> HttpResponse:
    """The latest final-labels run; HTMX polls it while it runs and stops (286) when done."""
    project, _ = project_for(request.user, slug, need=RESEARCH)
    run = label_run_latest(project=project)
    return polled_partial(
        request,
        "annotate/quality.html#label_run",
        {"project": project, "label_run": run},
        finished=run is None or run.is_finished,
    )
