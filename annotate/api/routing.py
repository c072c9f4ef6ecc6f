"""Routing runs: preview a policy under a budget, read its decisions, apply it (admins, as in
the web UI). A POST starts the preview on a worker and answers 202 with the run; GET the run
until its status is `preview` (or `failed`, with `error`). Logic is in
`annotate.services.routing`."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import MANAGE, project_for
from annotate.api.serializers import paginate, paginated_schema
from annotate.models import RoutingDecision, RoutingRun
from annotate.services import routing as service


class RoutingRunOutput(serializers.ModelSerializer):
    class Meta:
        model = RoutingRun
        fields = [
            "id",
            "policy",
            "policy_version",
            "budget_kind",
            "budget",
            "cost_per_judgment",
            "seed",
            "embed",
            "human_items",
            "estimate",
            "status",
            "progress",
            "error",
            "seconds",
            "created_at",
            "started_at",
            "finished_at",
            "applied_at",
        ]


class RoutingDecisionOutput(serializers.ModelSerializer):
    item_external_id = serializers.CharField(source="item.external_id")

    class Meta:
        model = RoutingDecision
        fields = ["item", "item_external_id", "route", "score", "rank", "reason"]


BUSY = inline_serializer("RoutingRunBusy", fields={"detail": serializers.CharField()})


class RoutingRunListApi(APIView):
    @extend_schema_serializer(component_name="RoutingPreviewInput")
    class InputSerializer(serializers.Serializer):
        policy = serializers.ChoiceField(choices=service.POLICIES)
        budget = serializers.FloatField(min_value=0.0, max_value=1e12)
        budget_kind = serializers.ChoiceField(choices=["judgments", "money"], default="judgments")
        cost_per_judgment = serializers.FloatField(default=0.0, min_value=0.0, max_value=1e9)
        seed = serializers.IntegerField(default=0, min_value=0, max_value=2**31 - 1)
        embed = serializers.BooleanField(
            default=False, help_text="Add MiniLM embeddings of the responses (slower)."
        )

    @extend_schema(
        responses=paginated_schema(RoutingRunOutput),
        summary="Routing runs of a project, newest first",
        operation_id="projects_routing_runs_list",
    )
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=MANAGE)
        return paginate(
            request,
            self,
            RoutingRun.objects.filter(project=project).order_by("-created_at", "-pk"),
            RoutingRunOutput,
        )

    @extend_schema(
        request=InputSerializer,
        responses={202: RoutingRunOutput, 409: BUSY},
        summary="Start computing a preview of a routing policy under a budget (on a worker)",
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=MANAGE)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            run = service.routing_run_start(
                project=project, user=request.user, **data.validated_data
            )
        except service.RoutingRunBusy as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except service.RoutingError as exc:
            raise ValidationError({"detail": [str(exc)]}) from None
        return Response(RoutingRunOutput(run).data, status=status.HTTP_202_ACCEPTED)


class RoutingRunDetailApi(APIView):
    @extend_schema(
        responses=RoutingRunOutput,
        summary="A routing run: its status and progress, then its estimate once computed",
    )
    def get(self, request: Request, slug: str, run_id: int) -> Response:
        project, _ = project_for(request.user, slug, need=MANAGE)
        return Response(
            RoutingRunOutput(get_object_or_404(RoutingRun, pk=run_id, project=project)).data
        )


class RoutingDecisionListApi(APIView):
    @extend_schema_serializer(component_name="RoutingDecisionFilter")
    class FilterSerializer(serializers.Serializer):
        route = serializers.ChoiceField(choices=["human", "ai"], required=False)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=paginated_schema(RoutingDecisionOutput),
        summary="A routing run's decisions, highest priority for humans first",
    )
    def get(self, request: Request, slug: str, run_id: int) -> Response:
        project, _ = project_for(request.user, slug, need=MANAGE)
        run = get_object_or_404(RoutingRun, pk=run_id, project=project)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        decisions = run.decisions.select_related("item").order_by("rank", "pk")
        if filters.validated_data.get("route"):
            decisions = decisions.filter(route=filters.validated_data["route"])
        return paginate(request, self, decisions, RoutingDecisionOutput)


class RoutingRunApplyApi(APIView):
    @extend_schema_serializer(component_name="RoutingApplyOutput")
    class OutputSerializer(serializers.Serializer):
        to_human = serializers.IntegerField()
        to_ai = serializers.IntegerField()

    @extend_schema(
        request=None, responses=OutputSerializer, summary="Apply a previewed routing run"
    )
    def post(self, request: Request, slug: str, run_id: int) -> Response:
        project, _ = project_for(request.user, slug, need=MANAGE)
        run = get_object_or_404(RoutingRun, pk=run_id, project=project)
        try:
            moved = service.routing_apply(run=run, user=request.user)
        except service.RoutingError as exc:
            raise ValidationError({"detail": [str(exc)]}) from None
        return Response(self.OutputSerializer(moved).data)
