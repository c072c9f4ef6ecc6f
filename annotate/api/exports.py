"""Exports: start one, follow it, download its files (researchers and admins)."""

from __future__ import annotations

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import RESEARCH, project_for
from annotate.api.serializers import ExportOutput, paginate, paginated_schema
from annotate.models import Export
from annotate.services import exports as service
from annotate.services.labels import METHODS


class ExportListApi(APIView):
    @extend_schema_serializer(component_name="ExportCreateInput")
    class InputSerializer(serializers.Serializer):
        shape = serializers.ChoiceField(choices=service.SHAPES)
        file_format = serializers.ChoiceField(choices=service.FORMATS, default="jsonl")
        source = serializers.ChoiceField(choices=service.SOURCES, default="all")
        min_agreement = serializers.FloatField(
            required=False, allow_null=True, min_value=0.0, max_value=1.0
        )
        aspect = serializers.CharField(
            required=False, allow_null=True, allow_blank=True, max_length=64
        )
        keep_ties = serializers.BooleanField(default=False)
        test_fraction = serializers.FloatField(default=0.0, min_value=0.0, max_value=0.99)
        split_seed = serializers.CharField(required=False, allow_blank=True, max_length=100)
        conversational = serializers.BooleanField(default=False)
        labels_method = serializers.ChoiceField(choices=METHODS, required=False, allow_null=True)

    @extend_schema(
        responses=paginated_schema(ExportOutput),
        summary="Exports of a project, newest first",
        operation_id="projects_exports_list",
    )
    def get(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        return paginate(
            request,
            self,
            Export.objects.filter(project=project).order_by("-created_at", "-pk"),
            ExportOutput,
        )

    @extend_schema(
        request=InputSerializer,
        responses={202: ExportOutput},
        summary="Start an export (runs on a worker)",
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        filters = dict(data.validated_data)
        shape, file_format = filters.pop("shape"), filters.pop("file_format")
        try:
            export = service.export_create(
                project=project,
                shape=shape,
                file_format=file_format,
                filters=filters,
                user=request.user,
            )
        except service.ExportError as exc:
            raise ValidationError({"filters": [str(exc)]}) from None
        return Response(ExportOutput(export).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(APIView):
    @extend_schema(
        responses=ExportOutput, summary="An export's status, progress, files and card statistics"
    )
    def get(self, request: Request, slug: str, export_id: int) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        return Response(ExportOutput(get_object_or_404(Export, pk=export_id, project=project)).data)


class ExportDownloadApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "file", str, description="A name from the export's `files`, e.g. train.jsonl."
            )
        ],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="Download one file of a finished export",
    )
    def get(self, request: Request, slug: str, export_id: int) -> FileResponse:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        export = get_object_or_404(Export, pk=export_id, project=project)
        try:
            path = service.export_file_path(
                export=export, name=request.query_params.get("file") or ""
            )
        except service.ExportError as exc:
            raise Http404(str(exc)) from None
        # FileResponse closes the file when the response is done.
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)
