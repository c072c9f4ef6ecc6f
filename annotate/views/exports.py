"""Export pages: start an export, watch it run, read its card, download its files."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate.access import RESEARCH, project_for
from annotate.models import Export, Project
from annotate.services import exports as service
from annotate.services.labels import METHODS
from annotate.views.polling import polled_partial


class ExportForm(forms.Form):
    """The export options as a form: it parses types; the service validates the meaning."""

    shape = forms.ChoiceField(choices=Export._meta.get_field("shape").choices)
    file_format = forms.ChoiceField(choices=Export._meta.get_field("file_format").choices)
    source = forms.ChoiceField(
        choices=[
            ("all", "Human and AI labels"),
            ("human", "Human labels only"),
            ("ai", "AI labels only"),
        ],
        required=False,
    )
    aspect = forms.ChoiceField(required=False)
    min_agreement = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        help_text="Keep labels whose humans agreed at least this much (drops AI and single-annotator labels).",
    )
    keep_ties = forms.BooleanField(required=False, label="Keep ties")
    test_fraction = forms.FloatField(
        required=False,
        min_value=0,
        max_value=0.9,
        initial=0.0,
        help_text="Share of prompts in the test split, by a hash of the prompt text.",
    )
    split_seed = forms.CharField(required=False, max_length=100)
    conversational = forms.BooleanField(
        required=False, label="Chat messages", help_text="TRL's conversational format."
    )
    labels_method = forms.ChoiceField(
        required=False,
        label="Recompute final labels first",
        choices=[("", "No, use the current ones"), *((m, m) for m in METHODS)],
    )

    def __init__(self, *args: object, project: Project, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["aspect"].choices = [("", "All aspects"), *((a, a) for a in project.aspects)]


def _list_context(project: Project) -> dict:
    recent = service.exports_of(project=project)
    return {
        "project": project,
        "exports": recent,
        "any_active": any(not e.is_finished for e in recent),
    }


def _export_for(request: HttpRequest, slug: str, export_id: int) -> tuple[Project, Export]:
    project, _ = project_for(request.user, slug, need=RESEARCH)
    return project, get_object_or_404(Export, pk=export_id, project=project)


@login_required
def exports(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=RESEARCH)
    form = ExportForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        shape, file_format = data.pop("shape"), data.pop("file_format")
        try:
            export = service.export_create(
                project=project,
                shape=shape,
                file_format=file_format,
                filters=data,
                user=request.user,
            )
        except service.ExportError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Export #{export.pk} is queued.")
            return redirect("exports", project.slug)
    return render(request, "annotate/exports.html", {**_list_context(project), "form": form})


@login_required
def export_list(request: HttpRequest, slug: str) -> HttpResponse:
    """The exports table; HTMX polls it while an export runs and stops (286) when none does."""
    project, _ = project_for(request.user, slug, need=RESEARCH)
    context = _list_context(project)
    return polled_partial(
        request, "annotate/exports.html#list", context, finished=not context["any_active"]
    )


@login_required
def export_detail(request: HttpRequest, slug: str, export_id: int) -> HttpResponse:
    project, export = _export_for(request, slug, export_id)
    card = ""
    if export.status == Export.Status.SUCCEEDED:
        try:
            card = service.export_file_path(export=export, name=service.CARD).read_text()
        except (service.ExportError, OSError):
            card = ""
    return render(
        request, "annotate/export_detail.html", {"project": project, "export": export, "card": card}
    )


@login_required
def export_download(request: HttpRequest, slug: str, export_id: int, name: str) -> FileResponse:
    _, export = _export_for(request, slug, export_id)
    try:
        path = service.export_file_path(export=export, name=name)
    except service.ExportError as exc:
        raise Http404(str(exc)) from None
    # FileResponse closes the file when the response is done.
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)


@login_required
def export_download_zip(request: HttpRequest, slug: str, export_id: int) -> StreamingHttpResponse:
    project, export = _export_for(request, slug, export_id)
    if export.status != Export.Status.SUCCEEDED:
        raise Http404("This export has no files (yet).")
    response = StreamingHttpResponse(
        service.export_zip_stream(export=export), content_type="application/zip"
    )
    filename = f"{project.slug}-{export.shape}-{export.pk}.zip"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_POST
def export_delete(request: HttpRequest, slug: str, export_id: int) -> HttpResponse:
    project, export = _export_for(request, slug, export_id)
    if not export.is_finished:
        messages.error(request, "A running export cannot be deleted; wait for it to finish.")
    else:
        service.export_delete(export=export)
        messages.success(request, f"Deleted export #{export_id} and its files.")
    return redirect("exports", project.slug)
