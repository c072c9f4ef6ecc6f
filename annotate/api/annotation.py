"""The human queue over JSON: next, submit, skip, progress. Same services as the screen.

Responses are listed in the order this annotator is shown them, labelled A, B, …; verdicts are
submitted in that same order and stored in canonical order by the service. Model names are left
out, as on the screen, so an annotator (or a tool acting for one) judges blind.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import ANNOTATE, project_for
from annotate.models import Assignment, Project
from annotate.services.queue import (
    CONFIDENCE_LABELS,
    QueueError,
    assignment_next,
    assignment_of,
    assignment_skip,
    judgment_submit,
    queue_progress,
)

LETTERS = "ABCDEFGHIJKLMNOP"


class AssignmentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    expires_at = serializers.DateTimeField()
    task_type = serializers.CharField()
    aspects = serializers.ListField(child=serializers.CharField())
    external_id = serializers.CharField()
    prompt = serializers.JSONField()
    responses = serializers.ListField(child=serializers.DictField())


def _assignment_json(project: Project, assignment: Assignment) -> dict[str, Any]:
    """What AssignmentOutput describes, built directly: this answers every "next", and running
    the serializer cost more CPU than the rest of the view (it stays as the schema)."""
    item = assignment.item
    return {
        "id": assignment.pk,
        "status": assignment.status,
        "expires_at": _datetime_json(assignment.expires_at),
        "task_type": project.task_type,
        "aspects": project.aspects,
        "external_id": item.external_id,
        "prompt": item.prompt,
        "responses": [
            {"label": LETTERS[p], "text": item.responses[c].get("text", "")}
            for p, c in enumerate(assignment.presentation_order)
        ],
    }


def _datetime_json(value: datetime) -> str:
    # As DRF's DateTimeField writes it: ISO 8601 in the current time zone, UTC as "Z".
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _submit_input(data: Any) -> tuple[Any, str, str]:
    """AssignmentSubmitApi.InputSerializer's checks, by hand for the same reason as above: a
    400 with the serializer's error shape for a missing `verdicts` or a non-string field. The
    verdicts themselves and the confidence choice are checked by the service (also a 400)."""
    if not isinstance(data, dict):
        raise serializers.ValidationError({"non_field_errors": ["Invalid data."]})
    errors = {}
    if "verdicts" not in data:
        errors["verdicts"] = ["This field is required."]
    elif not isinstance(data["verdicts"], dict):
        kind = type(data["verdicts"]).__name__
        errors["verdicts"] = [f'Expected a dictionary of items but got type "{kind}".']
    texts = {}
    for name in ("rationale", "confidence"):
        value = data.get(name, "")
        if not isinstance(value, str):
            errors[name] = ["Not a valid string."]
        texts[name] = value
    if errors:
        raise serializers.ValidationError(errors)
    return data["verdicts"], texts["rationale"], texts["confidence"]


def _get_assignment_for_user(project: Project, user: Any, assignment_id: int) -> Assignment:
    # Not the item: its texts are not needed to record a verdict.
    assignment = assignment_of(project=project, annotator=user, assignment_id=assignment_id)
    if assignment is None:
        raise Http404("No such assignment for you.")
    return assignment


class JSONFirstNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, with the answer for what queue clients send worked out directly.

    For `Accept: application/json`, `*/*` or none, no `?format=` and the JSON renderer alone,
    DRF picks JSON as "application/json" every time, after building the query dict and parsing
    the media types: about a fiftieth of a cycle (issue 3). Anything else (another type, a
    format override) goes through DRF's rules, and a type we cannot give is still a 406.
    """

    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        meta = request.META
        if (
            format_suffix is None
            and not meta.get("QUERY_STRING")
            and meta.get("HTTP_ACCEPT", "*/*") in ("application/json", "*/*")
            and len(renderers) == 1
            and renderers[0].media_type == "application/json"
        ):
            return renderers[0], "application/json"
        return super().select_renderer(request, renderers, format_suffix)


def _refusal(exc: QueueError) -> Response:
    return Response({"detail": str(exc)}, status=exc.status)


class AssignmentNextApi(APIView):
    # JSON only: negotiating between JSON and the browsable API cost a twentieth of a cycle.
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONFirstNegotiation

    @extend_schema(
        request=None,
        responses={200: AssignmentOutput, 204: None},
        summary="Your open assignment, or a new one (204 when nothing is left for you)",
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=ANNOTATE)
        assignment = assignment_next(project=project, annotator=request.user)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_assignment_json(project, assignment))


class AssignmentSubmitApi(APIView):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONFirstNegotiation
    parser_classes = [JSONParser]  # verdicts are nested objects: a form could not carry them

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AssignmentSubmitInput"  # nested names repeat across views

        verdicts = serializers.DictField(
            child=serializers.JSONField(),
            help_text='Per aspect, in the order shown: {"strength"}, {"ranks"} or {"best","worst"}.',
        )
        rationale = serializers.CharField(required=False, allow_blank=True, default="")
        confidence = serializers.ChoiceField(
            choices=["", *CONFIDENCE_LABELS], required=False, default=""
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AssignmentSubmitOutput"  # nested names repeat across views

        assignment = serializers.IntegerField()
        judgments = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer},
        summary="Submit a judgment (idempotent: a repeat returns the same judgments)",
    )
    def post(self, request: Request, slug: str, assignment_id: int) -> Response:
        project, _ = project_for(request.user, slug, need=ANNOTATE)
        assignment = _get_assignment_for_user(project, request.user, assignment_id)
        verdicts, rationale, confidence = _submit_input(request.data)
        try:
            judgments = judgment_submit(
                assignment=assignment,
                annotator=request.user,
                verdicts=verdicts,
                rationale=rationale,
                confidence_label=confidence,
            )
        except QueueError as exc:
            return _refusal(exc)
        # OutputSerializer's shape, built directly (see _assignment_json).
        return Response(
            {
                "assignment": assignment.pk,
                "judgments": [{"aspect": j.aspect, "value": j.value} for j in judgments],
            }
        )


class AssignmentSkipApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AssignmentSkipInput"  # nested names repeat across views

        reason = serializers.CharField(max_length=500)

    @extend_schema(
        request=InputSerializer,
        responses={200: AssignmentOutput},
        summary="Skip an item, with a reason",
    )
    def post(self, request: Request, slug: str, assignment_id: int) -> Response:
        project, _ = project_for(request.user, slug, need=ANNOTATE)
        assignment = _get_assignment_for_user(project, request.user, assignment_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            skipped = assignment_skip(
                assignment=assignment, annotator=request.user, reason=data.validated_data["reason"]
            )
        except QueueError as exc:
            return _refusal(exc)
        skipped.item = assignment.item
        return Response(_assignment_json(project, skipped))


class ProgressApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ProgressOutput"  # nested names repeat across views

        done = serializers.IntegerField()
        today = serializers.IntegerField()
        skipped = serializers.IntegerField()
        remaining = serializers.IntegerField()
        remaining_capped = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer, summary="Your progress in a project")
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=ANNOTATE)
        progress = queue_progress(project=project, annotator=request.user)
        return Response(self.OutputSerializer(progress).data)
