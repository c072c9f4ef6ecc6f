"""The human queue over JSON: next, submit, skip, progress. Same services as the screen.

Responses are listed in the order this annotator is shown them, labelled A, B, …; verdicts are
submitted in that same order and stored in canonical order by the service. Model names are left
out, as on the screen, so an annotator (or a tool acting for one) judges blind.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
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
    item = assignment.item
    return AssignmentOutput(
        {
            "id": assignment.pk,
            "status": assignment.status,
            "expires_at": assignment.expires_at,
            "task_type": project.task_type,
            "aspects": project.aspects,
            "external_id": item.external_id,
            "prompt": item.prompt,
            "responses": [
                {"label": LETTERS[p], "text": item.responses[c].get("text", "")}
                for p, c in enumerate(assignment.presentation_order)
            ],
        }
    ).data


def _get_assignment_for_user(project: Project, user: Any, assignment_id: int) -> Assignment:
    # Not the item: its texts are not needed to record a verdict.
    assignment = assignment_of(project=project, annotator=user, assignment_id=assignment_id)
    if assignment is None:
        raise Http404("No such assignment for you.")
    return assignment


def _refusal(exc: QueueError) -> Response:
    return Response({"detail": str(exc)}, status=exc.status)


class AssignmentNextApi(APIView):
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
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            judgments = judgment_submit(
                assignment=assignment,
                annotator=request.user,
                verdicts=data.validated_data["verdicts"],
                rationale=data.validated_data["rationale"],
                confidence_label=data.validated_data["confidence"],
            )
        except QueueError as exc:
            return _refusal(exc)
        return Response(
            self.OutputSerializer(
                {
                    "assignment": assignment.pk,
                    "judgments": [{"aspect": j.aspect, "value": j.value} for j in judgments],
                }
            ).data
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
