from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import ANNOTATE, project_for, projects_of


class ProjectOutput(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    task_type = serializers.CharField()
    num_responses = serializers.IntegerField()
    aspects = serializers.ListField(child=serializers.CharField())
    allow_ties = serializers.BooleanField()
    overlap = serializers.IntegerField()
    role = serializers.CharField()


def _project_json(project, role) -> dict:
    return ProjectOutput(
        {**{f: getattr(project, f) for f in ProjectOutput().fields if f != "role"}, "role": role}
    ).data


class ProjectListApi(APIView):
    @extend_schema(responses=ProjectOutput(many=True), summary="Projects you are a member of")
    def get(self, request: Request) -> Response:
        return Response([_project_json(p, role) for p, role in projects_of(request.user)])


class ProjectDetailApi(APIView):
    @extend_schema(responses=ProjectOutput, summary="One project")
    def get(self, request: Request, slug: str) -> Response:
        project, role = project_for(request.user, slug, need=ANNOTATE)
        return Response(_project_json(project, role))
