"""Final labels, computing them, and the agreement report (researchers and admins)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
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
from annotate.api.serializers import FinalLabelOutput, paginate, paginated_schema
from annotate.models import FinalLabel, LabelRun, ReportRun
from annotate.services.labels import (
    METHODS,
    LabelRunBusy,
    LabelsError,
    label_run_start,
)
from annotate.services.reports import report_params


class FinalLabelListApi(APIView):
    @extend_schema_serializer(component_name="FinalLabelFilter")
    class FilterSerializer(serializers.Serializer):
        source = serializers.ChoiceField(choices=FinalLabel.Source.choices, required=False)
        aspect = serializers.CharField(required=False, max_length=64)
        min_agreement = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=paginated_schema(FinalLabelOutput),
        summary="Final labels of a project",
    )
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        qs = FinalLabel.objects.filter(item__project=project).select_related("item").order_by("pk")
        if data.get("source"):
            qs = qs.filter(source=data["source"])
        if data.get("aspect"):
            qs = qs.filter(aspect=data["aspect"])
        if data.get("min_agreement") is not None:
            qs = qs.filter(agreement__gte=data["min_agreement"])
        return paginate(request, self, qs, FinalLabelOutput)


class LabelsSummaryOutput(serializers.Serializer):
    method = serializers.CharField()
    total = serializers.IntegerField()
    human = serializers.IntegerField()
    ai = serializers.IntegerField()
    removed = serializers.IntegerField()
    learned = serializers.IntegerField()
    seconds = serializers.FloatField()


class LabelRunOutput(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField()

    class Meta:
        model = LabelRun
        fields = [
            "id",
            "url",
            "method",
            "status",
            "summary",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_url(self, run: LabelRun) -> str:
        path = reverse("api-label-run", args=[run.project.slug, run.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    @extend_schema_field(LabelsSummaryOutput(allow_null=True))
    def get_summary(self, run: LabelRun) -> dict | None:
        """The computation's counts once it succeeded; null before."""
        return run.summary or None


class FinalLabelComputeApi(APIView):
    @extend_schema_serializer(component_name="FinalLabelComputeInput")
    class InputSerializer(serializers.Serializer):
        method = serializers.ChoiceField(choices=METHODS, default="majority")

    @extend_schema(
        request=InputSerializer,
        responses={
            202: LabelRunOutput,
            409: inline_serializer("LabelRunBusy", fields={"detail": serializers.CharField()}),
        },
        summary="Start (re)computing the final labels (runs on a worker)",
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            run = label_run_start(
                project=project, method=data.validated_data["method"], user=request.user
            )
        except LabelRunBusy as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except LabelsError as exc:
            raise ValidationError({"method": [str(exc)]}) from None
        return Response(
            LabelRunOutput(run, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED,
        )


class LabelRunDetailApi(APIView):
    @extend_schema(responses=LabelRunOutput, summary="A final-labels run's status and summary")
    def get(self, request: Request, slug: str, run_id: int) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        run = get_object_or_404(
            LabelRun.objects.select_related("project"), pk=run_id, project=project
        )
        return Response(LabelRunOutput(run, context={"request": request}).data)


AGREEMENT_REPORT = inline_serializer(
    name="AgreementReport",
    fields={
        "units": serializers.IntegerField(),
        "human_judgments": serializers.IntegerField(),
        "ai_judgments": serializers.IntegerField(),
        "alpha": serializers.DictField(child=serializers.FloatField(allow_null=True)),
        "alpha_units": serializers.DictField(child=serializers.IntegerField()),
        "kappas": serializers.ListField(child=serializers.DictField()),
        "annotators": serializers.ListField(child=serializers.DictField()),
        "judges": serializers.ListField(child=serializers.DictField()),
        "per_day": serializers.ListField(child=serializers.DictField()),
        "per_week_agreement": serializers.ListField(child=serializers.DictField()),
        "disputed": serializers.ListField(child=serializers.DictField()),
        **REPORT_META,
    },
)


class AgreementApi(APIView):
    @extend_schema(
        responses={200: AGREEMENT_REPORT, 404: NOT_COMPUTED},
        summary="Agreement: Krippendorff's alpha, Cohen's kappa, judges vs humans, gold accuracy"
        " (the latest stored report)",
    )
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        params = report_params(project=project, kind=ReportRun.Kind.QUALITY)
        return stored_report_response(request, project, params, "the agreement report")

    @extend_schema(
        request=None,
        responses={202: ReportRunOutput, 409: BUSY},
        summary="Start (re)computing the agreement report (runs on a worker)",
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        return start_report_response(request, project, {"kind": ReportRun.Kind.QUALITY})
