from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django_htmx.http import HttpResponseStopPolling

from annotate.access import RESEARCH, project_for
from annotate.forms import ImportForm
from annotate.models import ImportBatch
from annotate.services.imports import ImportRefused, import_upload_accept


@login_required
def import_upload(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=RESEARCH)
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch = import_upload_accept(
                project=project,
                upload=form.cleaned_data["file"],
                options=form.options(),
                user=request.user,
            )
        except ImportRefused as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("import_status", project.slug, batch.pk)
    return render(request, "annotate/import.html", {"project": project, "form": form})


@login_required
def import_status(request: HttpRequest, slug: str, batch_id: int) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=RESEARCH)
    batch = get_object_or_404(ImportBatch, pk=batch_id, project=project)
    context = {"project": project, "batch": batch}
    if request.htmx:
        finished = batch.status in (ImportBatch.Status.SUCCEEDED, ImportBatch.Status.FAILED)
        response = render(request, "annotate/import_status.html#status", context)
        if finished:
            # 286 stops the poll; the final state is rendered in the same response.
            return HttpResponseStopPolling(response.content)
        return response
    return render(request, "annotate/import_status.html", context)
