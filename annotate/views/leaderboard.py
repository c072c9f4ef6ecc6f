"""Leaderboard page: models rated from human, AI or final labels, with intervals."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotate.access import RESEARCH, project_for
from annotate.services.leaderboard import LABEL_SOURCES, LeaderboardError, leaderboard_compute

DEFAULT_ROUNDS = 100


def _position(value: float, low: float, high: float) -> float:
    """A value's place on the page's common axis, in percent."""
    return round(100 * (value - low) / (high - low), 2) if high > low else 50.0


def _intervals(models: list, attr: str, low_attr: str, high_attr: str) -> dict[str, dict]:
    """Geometry of interval bars drawn with CSS: every model on one axis."""
    points = [(getattr(m, low_attr), getattr(m, attr), getattr(m, high_attr)) for m in models]
    points = [p for p in points if p[1] is not None]
    if not points:
        return {}
    low = min(p[0] for p in points)
    high = max(p[2] for p in points)
    pad = (high - low) * 0.05 or 1.0
    low, high = low - pad, high + pad
    return {
        m.model: {
            "left": _position(getattr(m, low_attr), low, high),
            "width": max(
                _position(getattr(m, high_attr), low, high)
                - _position(getattr(m, low_attr), low, high),
                0.5,
            ),
            "point": _position(getattr(m, attr), low, high),
        }
        for m in models
        if getattr(m, attr) is not None
    }


@login_required
def leaderboard(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=RESEARCH)
    labels = request.GET.get("labels") or "final"
    aspect = request.GET.get("aspect") or (project.aspects[0] if project.aspects else "overall")
    try:
        rounds = int(request.GET.get("rounds") or DEFAULT_ROUNDS)
    except ValueError:
        rounds = DEFAULT_ROUNDS
    error = board = None
    try:
        board = leaderboard_compute(project=project, labels=labels, aspect=aspect, rounds=rounds)
    except LeaderboardError as exc:
        error = str(exc)
    rows = []
    if board:
        bt = _intervals(board.models, "bt", "bt_low", "bt_high")
        pl = _intervals(board.models, "pl", "pl_low", "pl_high")
        skill = _intervals(board.models, "mu", "mu_low", "mu_high")
        rows = [
            {"m": m, "bt": bt.get(m.model), "pl": pl.get(m.model), "skill": skill.get(m.model)}
            for m in board.models
        ]
    context = {
        "project": project,
        "board": board,
        "rows": rows,
        "error": error,
        "labels": labels,
        "aspect": aspect,
        "rounds": rounds,
        "label_sources": LABEL_SOURCES,
    }
    return render(request, "annotate/leaderboard.html", context)
