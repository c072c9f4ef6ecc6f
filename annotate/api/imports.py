from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import records
from annotate.access import RESEARCH, project_for
from annotate.models import ImportBatch
from annotate.services.imports import ImportRefused, import_upload_accept


class ImportBatchOutput(serializers.ModelSerializer):
    class Meta:
        model = ImportBatch
        fields = [
            "id",
            "filename",
            "kind",
            "status",
            "created",
            "skipped",
            "invalid",
            "errors",
            "message",
            "created_at",
        ]


class ImportCreateApi(APIView):
    """Upload a file of items; the import runs on a worker. Poll the returned batch for its result."""

    parser_classes = [MultiPartParser]

    class InputSerializer(serializers.Serializer):
        class Meta:
            # Every view nests an "InputSerializer": name the schema component after this one.
            ref_name = "ImportCreateInput"

        file = serializers.FileField()
        format = serializers.ChoiceField(
            choices=["jsonl", "json", "csv", "parquet"], required=False
        )
        maps = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        skip_invalid = serializers.BooleanField(required=False, default=False)

        def validate_maps(self, value: list[str]) -> list[str]:
            try:
                records.parse_maps(value)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from None
            return value

    @extend_schema(
        request=InputSerializer,
        responses={202: ImportBatchOutput},
        summary="Import items from a file",
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        options = {k: data.validated_data.get(k) for k in ("format", "maps", "skip_invalid")}
        try:
            batch = import_upload_accept(
                project=project,
                upload=data.validated_data["file"],
                options=options,
                user=request.user,
            )
        except ImportRefused as exc:
            raise ValidationError({"file": [str(exc)]}) from None
        return Response(ImportBatchOutput(batch).data, status=status.HTTP_202_ACCEPTED)


class ImportDetailApi(APIView):
    @extend_schema(responses=ImportBatchOutput, summary="An import's status and invalid rows")
    def get(self, request: Request, slug: str, batch_id: int) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        return Response(
            ImportBatchOutput(get_object_or_404(ImportBatch, pk=batch_id, project=project)).data
        )
