"""Output shapes shared by several API endpoints, and the pagination helper.

Serializers here only describe JSON; every rule lives in a service.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.models import Export, FinalLabel, Item, JudgeRun, Judgment


class ItemOutput(serializers.ModelSerializer):
    class Meta:
        model = Item
        fields = [
            "id",
            "external_id",
            "prompt",
            "responses",
            "metadata",
            "is_gold",
            "gold_label",
            "route",
            "human_assigned",
            "human_done",
            "flags",
            "created_at",
        ]


class JudgmentOutput(serializers.ModelSerializer):
    item_external_id = serializers.CharField(source="item.external_id")
    annotator = serializers.SerializerMethodField()
    judge = serializers.SerializerMethodField()

    class Meta:
        model = Judgment
        fields = [
            "id",
            "item",
            "item_external_id",
            "aspect",
            "kind",
            "source",
            "task_type",
            "value",
            "annotator",
            "judge",
            "prompt_version",
            "probabilities",
            "confidence",
            "signals",
            "rationale",
            "confidence_label",
            "time_spent_ms",
            "created_at",
        ]

    def get_annotator(self, obj: Judgment) -> str | None:
        if obj.kind != Judgment.Kind.HUMAN:
            return None
        return obj.annotator.username if obj.annotator_id else (obj.external_annotator or None)

    def get_judge(self, obj: Judgment) -> str | None:
        return obj.judge.name if obj.judge_id else None


class FinalLabelOutput(serializers.ModelSerializer):
    item_external_id = serializers.CharField(source="item.external_id")

    class Meta:
        model = FinalLabel
        fields = [
            "id",
            "item",
            "item_external_id",
            "aspect",
            "task_type",
            "value",
            "source",
            "method",
            "num_humans",
            "agreement",
            "ai_confidence",
            "computed_at",
        ]


class ExportOutput(serializers.ModelSerializer):
    percent = serializers.IntegerField()
    files = serializers.ListField(child=serializers.DictField(), read_only=True)

    class Meta:
        model = Export
        fields = [
            "id",
            "shape",
            "file_format",
            "filters",
            "status",
            "total",
            "processed",
            "rows",
            "percent",
            "files",
            "stats",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]


class JudgeRunOutput(serializers.ModelSerializer):
    judge = serializers.CharField(source="judge.name")
    percent = serializers.IntegerField()

    class Meta:
        model = JudgeRun
        fields = [
            "id",
            "judge",
            "prompt_version",
            "status",
            "total",
            "done",
            "failed",
            "percent",
            "batches_total",
            "batches_done",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]


def paginated_schema(serializer: type[serializers.Serializer]) -> serializers.Serializer:
    """The OpenAPI shape of a LimitOffsetPagination page of `serializer`."""
    return inline_serializer(
        name=f"Paginated{serializer.__name__}",
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


def paginate(
    request: Request, view: APIView, queryset: Any, serializer: type[serializers.Serializer]
) -> Response:
    """One page (`?limit=&offset=`) of `queryset` as `serializer` rows."""
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)
