from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate.access import RESEARCH, project_for
from annotate.models import Judge, JudgeRun, Project
from annotate.services import judging
from annotate.views.polling import polled_partial


def _runs_context(project: Project) -> dict:
    runs = list(project.judge_runs.select_related("judge")[:10])
    return {"project": project, "runs": runs, "any_active": any(not r.is_finished for r in runs)}


@login_required
def judges(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=RESEARCH)
    from models_gpu.prompts import DEFAULT_PAIRWISE_TEMPLATE

    rubric = judging.rubric_current(project)
    context = {
        **_runs_context(project),
        "panel": project.judges.all(),
        "runnable": Judge.objects.exclude(backend=Judge.Backend.IMPORTED),
        "rubric": rubric,
        "template_text": rubric.template if rubric else DEFAULT_PAIRWISE_TEMPLATE,
        "prompt_version": judging.prompt_version_for(project),
    }
    return render(request, "annotate/judging/judges.html", context)


@login_required
@require_POST
def judge_run_start(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=RESEARCH)
    judge = get_object_or_404(Judge, name=request.POST.get("judge", ""))
    try:
        run = judging.judge_run_start(
            project=project,
            judge=judge,
            user=request.user,
            kind=request.POST.get("kind", "verdicts"),
        )
    except judging.JudgingError as exc:
        messages.error(request, str(exc))
    else:
        what = "tagging" if run.kind == "tags" else "judging"
        messages.success(request, f"Started {judge.name} {what} {run.total} items.")
    return redirect("judges", project.slug)


@login_required
@require_POST
def judge_run_cancel(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=RESEARCH)
    run = get_object_or_404(JudgeRun, pk=run_id, project=project)
    judging.judge_run_cancel(run=run)
    if request.htmx:
        return render(request, "annotate/judging/_runs.html#runs", _runs_context(project))
    return redirect("judges", project.slug)


@login_required
def judge_runs(request: HttpRequest, slug: str) -> HttpResponse:
    """The runs table; HTMX polls it while a run is active and stops (286) when none is."""
    project, _ = project_for(request.user, slug, need=RESEARCH)
    context = _runs_context(project)
    return polled_partial(
        request, "annotate/judging/_runs.html#runs", context, finished=not context["any_active"]
    )


@login_required
@require_POST
def rubric_save(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=RESEARCH)
    try:
        rubric = judging.rubric_update(
            project=project, template=request.POST.get("template", ""), user=request.user
        )
    except judging.JudgingError as exc:
        messages.error(request, f"Not saved: {exc}")
    else:
        messages.success(request, f"Saved the judge prompt as version {rubric.version}.")
    return redirect("judges", project.slug)
