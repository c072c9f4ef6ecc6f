"""Items of a project (researchers and admins, as in the web UI)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import RESEARCH, project_for
from annotate.api.serializers import ItemOutput, paginate, paginated_schema
from annotate.models import Item


class ItemListApi(APIView):
    @extend_schema_serializer(component_name="ItemFilter")
    class FilterSerializer(serializers.Serializer):
        route = serializers.ChoiceField(choices=Item.Route.choices, required=False)
        is_gold = serializers.BooleanField(required=False, allow_null=True, default=None)
        external_id = serializers.CharField(required=False, max_length=255)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=paginated_schema(ItemOutput),
        summary="Items of a project",
        operation_id="projects_items_list",
    )
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = Item.objects.filter(project=project).order_by("pk")
        data = filters.validated_data
        if data.get("route"):
            qs = qs.filter(route=data["route"])
        if data.get("is_gold") is not None:
            qs = qs.filter(is_gold=data["is_gold"])
        if data.get("external_id"):
            qs = qs.filter(external_id=data["external_id"])
        return paginate(request, self, qs, ItemOutput)


class ItemDetailApi(APIView):
    @extend_schema(responses=ItemOutput, summary="One item")
    def get(self, request: Request, slug: str, item_id: int) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        return Response(ItemOutput(get_object_or_404(Item, pk=item_id, project=project)).data)
