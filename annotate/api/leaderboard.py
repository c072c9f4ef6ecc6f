"""Model leaderboard from final, human or AI labels (researchers and admins)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import RESEARCH, project_for
from annotate.services.leaderboard import LABEL_SOURCES, LeaderboardError, leaderboard_compute


class LeaderboardApi(APIView):
    @extend_schema_serializer(component_name="LeaderboardFilter")
    class FilterSerializer(serializers.Serializer):
        labels = serializers.ChoiceField(choices=LABEL_SOURCES, default="final")
        aspect = serializers.CharField(required=False, max_length=64)
        rounds = serializers.IntegerField(default=100, min_value=0, max_value=1000)
        seed = serializers.IntegerField(default=0, min_value=0, max_value=2**31 - 1)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=inline_serializer(
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
            },
        ),
        summary="Bradley–Terry, Plackett–Luce and openskill ratings of the models",
    )
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        try:
            board = leaderboard_compute(project=project, **filters.validated_data)
        except LeaderboardError as exc:
            raise ValidationError({"detail": [str(exc)]}) from None
        return Response(board.as_dict())
