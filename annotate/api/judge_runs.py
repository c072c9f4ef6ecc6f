"""AI judge runs: list, start, follow, cancel (researchers and admins, as on the judges page)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import RESEARCH, project_for
from annotate.api.serializers import JudgeRunOutput, paginate, paginated_schema
from annotate.models import Judge, JudgeRun
from annotate.services import judging


class JudgeRunListApi(APIView):
    @extend_schema_serializer(component_name="JudgeRunStartInput")
    class InputSerializer(serializers.Serializer):
        judge = serializers.CharField(max_length=100, help_text="A registered judge's name.")

    @extend_schema(
        responses=paginated_schema(JudgeRunOutput),
        summary="Judge runs of a project, newest first",
        operation_id="projects_judge_runs_list",
    )
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        runs = (
            JudgeRun.objects.filter(project=project)
            .select_related("judge")
            .order_by("-created_at", "-pk")
        )
        return paginate(request, self, runs, JudgeRunOutput)

    @extend_schema(
        request=InputSerializer,
        responses={202: JudgeRunOutput},
        summary="Start a judge run (runs on the gpu queue)",
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        judge = Judge.objects.filter(name=data.validated_data["judge"]).first()
        if judge is None:
            raise ValidationError({"judge": ["no judge of that name"]})
        try:
            run = judging.judge_run_start(project=project, judge=judge, user=request.user)
        except judging.JudgingError as exc:
            raise ValidationError({"judge": [str(exc)]}) from None
        return Response(JudgeRunOutput(run).data, status=status.HTTP_202_ACCEPTED)


class JudgeRunDetailApi(APIView):
    @extend_schema(responses=JudgeRunOutput, summary="A judge run's status and progress")
    def get(self, request: Request, slug: str, run_id: int) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        return Response(
            JudgeRunOutput(get_object_or_404(JudgeRun, pk=run_id, project=project)).data
        )


class JudgeRunCancelApi(APIView):
    @extend_schema(
        request=None,
        responses=JudgeRunOutput,
        summary="Cancel a judge run (batches not started do nothing)",
    )
    def post(self, request: Request, slug: str, run_id: int) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        run = get_object_or_404(JudgeRun, pk=run_id, project=project)
        judging.judge_run_cancel(run=run)
        run.refresh_from_db()
        return Response(JudgeRunOutput(run).data)
