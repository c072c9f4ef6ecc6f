from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from annotate.access import MANAGE, project_for
from annotate.models import Item, Project, RoutingRun
from annotate.services import routing as routing_service

CHART_W, CHART_H, PAD = 560, 240, 36


def chart(estimate: dict) -> dict | None:
    """Screen coordinates of the accuracy-vs-human-share curve (drawn as inline SVG, no JS)."""
    shares, acc = estimate.get("shares") or [], estimate.get("accuracy") or []
    if not shares or not acc:
        return None
    lo, hi = min(acc), max(acc)
    lo, hi = max(0.0, lo - 0.02), min(1.0, hi + 0.02)
    span = (hi - lo) or 1.0

    def xy(share: float, value: float) -> tuple[float, float]:
        x = PAD + share * (CHART_W - 2 * PAD)
        y = CHART_H - PAD - (value - lo) / span * (CHART_H - 2 * PAD)
        return round(x, 1), round(y, 1)

    points = [xy(s, a) for s, a in zip(shares, acc, strict=True)]
    chosen = estimate.get("chosen") or {}
    ticks = [{"y": xy(0, v)[1], "label": f"{v:.0%}"} for v in (lo, (lo + hi) / 2, hi)]
    xticks = [{"x": xy(s, lo)[0], "label": f"{s:.0%}"} for s in (0, 0.25, 0.5, 0.75, 1.0)]
    return {
        "w": CHART_W,
        "h": CHART_H,
        "pad": PAD,
        "polyline": " ".join(f"{x},{y}" for x, y in points),
        "points": [
            {"x": x, "y": y, "share": s, "acc": a}
            for (x, y), s, a in zip(points, shares, acc, strict=True)
        ],
        "chosen": {
            "x": xy(chosen["share"], chosen["accuracy"])[0],
            "y": xy(chosen["share"], chosen["accuracy"])[1],
            **chosen,
        }
        if chosen.get("accuracy") == chosen.get("accuracy") and chosen
        else None,
        "yticks": ticks,
        "xticks": xticks,
        "bottom": CHART_H - PAD,
        "right": CHART_W - PAD,
    }


def _run_context(run: RoutingRun | None) -> dict:
    """What the run panel shows: its chart and first decisions once the preview is computed."""
    done = run is not None and run.status in (RoutingRun.Status.PREVIEW, RoutingRun.Status.APPLIED)
    return {
        "run": run,
        "chart": chart(run.estimate) if done else None,
        "to_humans": run.decisions.filter(route=Item.Route.HUMAN)
        .select_related("item")
        .order_by("rank")[:50]
        if done
        else [],
    }


def _recent_runs(project: Project) -> list[RoutingRun]:
    return list(project.routing_runs.all()[:10])


@login_required
def routing_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=MANAGE)
    runs = _recent_runs(project)
    selected = None
    if request.GET.get("run"):
        selected = get_object_or_404(RoutingRun, pk=request.GET["run"], project=project)
    elif runs:
        selected = runs[0]
    n_items = project.items.count()
    context = {
        "project": project,
        "runs": runs,
        "policies": routing_service.POLICIES,
        "n_items": n_items,
        "max_judgments": n_items * project.overlap,
        "default_budget": selected.budget if selected else round(n_items * project.overlap * 0.2),
        **_run_context(selected),
    }
    return render(request, "annotate/routing/routing.html", context)


@login_required
@require_POST
def routing_preview(request: HttpRequest, slug: str) -> HttpResponse:
    """Start computing a preview on a worker; the page then follows the run."""
    project, _ = project_for(request.user, slug, need=MANAGE)
    try:
        run = routing_service.routing_run_start(
            project=project,
            policy=request.POST.get("policy", ""),
            budget=float(request.POST.get("budget", "0")),
            budget_kind=request.POST.get("budget_kind", "judgments"),
            cost_per_judgment=float(request.POST.get("cost_per_judgment") or 0),
            embed=request.POST.get("embed") == "on",
            user=request.user,
        )
    except (routing_service.RoutingError, ValueError) as exc:
        messages.error(request, f"No preview: {exc}")
        return redirect("routing", project.slug)
    return redirect(f"{reverse('routing', args=[project.slug])}?run={run.pk}")


@login_required
def routing_run(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    """One run's panel; HTMX polls it while the preview is computed and stops (286) when it is
    finished, swapping in the chart, the decisions and the Apply button (or the error)."""
    project, _ = project_for(request.user, slug, need=MANAGE)
    run = get_object_or_404(RoutingRun, pk=run_id, project=project)
    response = render(
        request,
        "annotate/routing/routing.html#run_panel",
        {"project": project, **_run_context(run)},
    )
    if request.htmx and run.is_finished:
        # The list of runs below the panel still says "queued": refresh it out of band.
        runs = render(
            request,
            "annotate/routing/routing.html#runs_table",
            {"runs": _recent_runs(project), "oob": True},
        )
        return HttpResponseStopPolling(response.content + runs.content)
    return response


@login_required
@require_POST
def routing_apply(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=MANAGE)
    run = get_object_or_404(RoutingRun, pk=run_id, project=project)
    try:
        moved = routing_service.routing_apply(run=run, user=request.user)
    except routing_service.RoutingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"Applied: {run.human_items} items go to humans ({moved['to_human']} newly), {moved['to_ai']} more keep their AI label.",
        )
    return redirect(f"{reverse('routing', args=[project.slug])}?run={run.pk}")
