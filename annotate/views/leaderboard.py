"""Leaderboard page: models rated from human, AI or final labels, with intervals.

The ratings are computed on a worker and stored (`services.reports`); the page shows the stored
leaderboard for the selected label source, aspect and rounds, and never computes in the request.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from annotate.access import RESEARCH, project_for
from annotate.models import Project, ReportRun
from annotate.services.leaderboard import LABEL_SOURCES
from annotate.services.reports import (
    DEFAULT_ROUNDS,
    ReportError,
    report_ensure,
    report_latest,
    report_params,
    report_run_latest,
    report_run_start,
)
from annotate.views.polling import polled_partial


def _position(value: float, low: float, high: float) -> float:
    """A value's place on the page's common axis, in percent."""
    return round(100 * (value - low) / (high - low), 2) if high > low else 50.0


def _intervals(points: dict[str, tuple[float, float, float]]) -> dict[str, dict]:
    """Geometry of interval bars drawn with CSS: every model on one axis.

    `points` maps a model to (low, value, high)."""
    if not points:
        return {}
    low = min(p[0] for p in points.values())
    high = max(p[2] for p in points.values())
    pad = (high - low) * 0.05 or 1.0
    low, high = low - pad, high + pad
    return {
        model: {
            "left": _position(lo, low, high),
            "width": max(_position(hi, low, high) - _position(lo, low, high), 0.5),
            "point": _position(value, low, high),
        }
        for model, (lo, value, hi) in points.items()
    }


def _rows(board: dict) -> list[dict]:
    """One table row per model of a stored leaderboard (`Leaderboard.as_dict`)."""
    models = board["models"]
    bt = _intervals(
        {
            m["model"]: (
                m["bradley_terry"]["low"],
                m["bradley_terry"]["rating"],
                m["bradley_terry"]["high"],
            )
            for m in models
        }
    )
    pl = _intervals(
        {
            m["model"]: (
                m["plackett_luce"]["low"],
                m["plackett_luce"]["rating"],
                m["plackett_luce"]["high"],
            )
            for m in models
            if m["plackett_luce"] is not None
        }
    )
    skill = _intervals(
        {
            m["model"]: (
                m["openskill"]["mu"] - 1.96 * m["openskill"]["sigma"],
                m["openskill"]["mu"],
                m["openskill"]["mu"] + 1.96 * m["openskill"]["sigma"],
            )
            for m in models
        }
    )
    return [
        {"m": m, "bt": bt.get(m["model"]), "pl": pl.get(m["model"]), "skill": skill.get(m["model"])}
        for m in models
    ]


def _selection(project: Project, query: dict) -> tuple[str, str, int]:
    """The label source, aspect and rounds asked for, with the page's defaults."""
    labels = query.get("labels") or "final"
    aspect = query.get("aspect") or (project.aspects[0] if project.aspects else "overall")
    try:
        rounds = int(query.get("rounds") or DEFAULT_ROUNDS)
    except ValueError:
        rounds = DEFAULT_ROUNDS
    return labels, aspect, rounds


@login_required
def leaderboard(request: HttpRequest, slug: str) -> HttpResponse:
    """The stored leaderboard of the selection; opening the page starts computing it on a
    worker when it is missing or the data changed since."""
    project, _ = project_for(request.user, slug, need=RESEARCH)
    labels, aspect, rounds = _selection(project, request.GET)
    error = stored = None
    try:
        params = report_params(
            project=project,
            kind=ReportRun.Kind.LEADERBOARD,
            labels=labels,
            aspect=aspect,
            rounds=rounds,
        )
    except ReportError as exc:
        error = str(exc)
    else:
        report_ensure(project=project, params=params, user=request.user)
        stored = report_latest(project=project, params=params)
    board = stored.payload if stored else None
    context = {
        "project": project,
        "stored": stored,
        "board": board,
        "rows": _rows(board) if board else [],
        "report_run": report_run_latest(project=project, kind=ReportRun.Kind.LEADERBOARD),
        "error": error,
        "labels": labels,
        "aspect": aspect,
        "rounds": rounds,
        "label_sources": LABEL_SOURCES,
    }
    return render(request, "annotate/leaderboard.html", context)


@login_required
@require_POST
def leaderboard_compute(request: HttpRequest, slug: str) -> HttpResponse:
    """Start (re)computing the selected leaderboard on a worker; the page then follows it."""
    project, _ = project_for(request.user, slug, need=RESEARCH)
    labels, aspect, rounds = _selection(project, request.POST)
    try:
        run = report_run_start(
            project=project,
            params={"kind": "leaderboard", "labels": labels, "aspect": aspect, "rounds": rounds},
            user=request.user,
        )
    except ReportError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Computing the leaderboard (run #{run.pk}).")
    query = urlencode({"labels": labels, "aspect": aspect, "rounds": rounds})
    return redirect(f"{reverse('leaderboard', args=[project.slug])}?{query}")


@login_required
def leaderboard_run(request: HttpRequest, slug: str) -> HttpResponse:
    """The latest leaderboard run; HTMX polls it while it runs and stops (286) when done.

    The poll carries the page's selection: when the run that finishes is that selection, the
    page reloads to show it."""
    project, _ = project_for(request.user, slug, need=RESEARCH)
    labels, aspect, rounds = _selection(project, request.GET)
    run = report_run_latest(project=project, kind=ReportRun.Kind.LEADERBOARD)
    shown_here = run is not None and (run.labels, run.aspect, run.rounds) == (
        labels,
        aspect,
        rounds,
    )
    return polled_partial(
        request,
        "annotate/leaderboard.html#report_run",
        {
            "project": project,
            "report_run": run,
            "labels": labels,
            "aspect": aspect,
            "rounds": rounds,
        },
        finished=run is None or run.is_finished,
        reload_page=shown_here and run.status == ReportRun.Status.SUCCEEDED,
    )
