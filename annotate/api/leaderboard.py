"""Model leaderboard from final, human or AI labels (researchers and admins).

GET answers with the stored leaderboard of the parameters asked; POST starts computing it on a
worker (see `annotate.services.reports`).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import RESEARCH, project_for
from annotate.api.reports import (
    BUSY,
    NOT_COMPUTED,
    REPORT_META,
    ReportRunOutput,
    start_report_response,
    stored_report_response,
)
from annotate.models import Project, ReportRun
from annotate.services.leaderboard import LABEL_SOURCES
from annotate.services.reports import ReportError, report_params

LEADERBOARD = inline_serializer(
    name="Leaderboard",
    fields={
        "labels": serializers.CharField(),
        "aspect": serializers.CharField(),
        "task_type": serializers.CharField(),
        "bootstrap_rounds": serializers.IntegerField(),
        "plackett_luce_rounds": serializers.IntegerField(),
        "labels_used": serializers.IntegerField(),
        "labels_skipped": serializers.IntegerField(),
        "pairs": serializers.IntegerField(),
        "seconds": serializers.FloatField(),
        "models": serializers.ListField(child=serializers.DictField()),
        **REPORT_META,
    },
)


@extend_schema_serializer(component_name="LeaderboardFilter")
class LeaderboardParams(serializers.Serializer):
    labels = serializers.ChoiceField(choices=LABEL_SOURCES, default="final")
    aspect = serializers.CharField(required=False, max_length=64)
    rounds = serializers.IntegerField(default=100, min_value=0, max_value=1000)
    seed = serializers.IntegerField(default=0, min_value=0, max_value=2**31 - 1)


def _params(project: Project, data: object) -> dict:
    given = LeaderboardParams(data=data)
    given.is_valid(raise_exception=True)
    try:
        return report_params(
            project=project, kind=ReportRun.Kind.LEADERBOARD, **given.validated_data
        )
    except ReportError as exc:
        raise ValidationError({"detail": [str(exc)]}) from None


class LeaderboardApi(APIView):
    @extend_schema(
        parameters=[LeaderboardParams],
        responses={200: LEADERBOARD, 404: NOT_COMPUTED},
        summary="Bradley–Terry, Plackett–Luce and openskill ratings of the models"
        " (the latest stored leaderboard of these parameters)",
    )
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        params = _params(project, request.query_params)
        return stored_report_response(request, project, params, "this leaderboard")

    @extend_schema(
        request=LeaderboardParams,
        responses={202: ReportRunOutput, 409: BUSY},
        summary="Start (re)computing the leaderboard of these parameters (runs on a worker)",
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        return start_report_response(request, project, _params(project, request.data))
