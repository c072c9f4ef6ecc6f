"""Judgments of a project, human and AI (researchers and admins)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import RESEARCH, project_for
from annotate.api.serializers import JudgmentOutput, paginate, paginated_schema
from annotate.converters import MAX_ID
from annotate.models import Judgment


class JudgmentListApi(APIView):
    @extend_schema_serializer(component_name="JudgmentFilter")
    class FilterSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Judgment.Kind.choices, required=False)
        aspect = serializers.CharField(required=False, max_length=64)
        item = serializers.IntegerField(
            required=False, min_value=1, max_value=MAX_ID, help_text="Item id."
        )
        judge = serializers.CharField(required=False, max_length=100, help_text="Judge name.")

    @extend_schema(
        parameters=[FilterSerializer],
        responses=paginated_schema(JudgmentOutput),
        summary="Judgments of a project",
    )
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        qs = (
            Judgment.objects.filter(item__project=project)
            .select_related("item", "annotator", "judge")
            .order_by("pk")
        )
        if data.get("kind"):
            qs = qs.filter(kind=data["kind"])
        if data.get("aspect"):
            qs = qs.filter(aspect=data["aspect"])
        if data.get("item"):
            qs = qs.filter(item_id=data["item"])
        if data.get("judge"):
            qs = qs.filter(judge__name=data["judge"])
        return paginate(request, self, qs, JudgmentOutput)
