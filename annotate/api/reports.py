"""Stored reports (agreement, leaderboards): the run that computes one, and answering with one.

The agreement and leaderboard endpoints answer with the latest stored report for the parameters
asked and start a run with a POST (202 with the run, followed at `reports/runs/<id>/`).
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import RESEARCH, project_for
from annotate.models import Project, ReportRun
from annotate.services.reports import (
    ReportRunBusy,
    report_is_stale,
    report_latest,
    report_run_start,
)


class ReportRunOutput(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ReportRun
        fields = [
            "id",
            "url",
            "kind",
            "labels",
            "aspect",
            "rounds",
            "seed",
            "status",
            "progress",
            "judgments",
            "computed_at",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_url(self, run: ReportRun) -> str:
        path = reverse("api-report-run", args=[run.project.slug, run.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


REPORT_META = {
    "computed_at": serializers.DateTimeField(),
    "judgments": serializers.IntegerField(
        help_text="Judgments (final labels, for a leaderboard of final labels) it was computed from"
    ),
    "stale": serializers.BooleanField(help_text="The project's data changed since"),
    "run": serializers.IntegerField(help_text="The run that computed it"),
}
NOT_COMPUTED = inline_serializer(
    "ReportNotComputed",
    fields={
        "detail": serializers.CharField(),
        "run": ReportRunOutput(allow_null=True, help_text="The latest run of these parameters"),
    },
)
BUSY = inline_serializer("ReportRunBusy", fields={"detail": serializers.CharField()})


def stored_report_response(
    request: Request, project: Project, params: dict[str, Any], what: str
) -> Response:
    """200 with the latest stored report of `params` (and when it was computed), or 404 saying
    it is not computed yet, with the latest run of those parameters to follow."""
    report = report_latest(project=project, params=params)
    if report is None:
        run = ReportRun.objects.filter(project=project, **params).order_by("-created_at").first()
        return Response(
            {
                "detail": f"{what} is not computed yet: POST to this address to compute it",
                "run": ReportRunOutput(run, context={"request": request}).data if run else None,
            },
            status=status.HTTP_404_NOT_FOUND,
        )
    return Response(
        {
            **report.payload,
            "computed_at": report.computed_at,
            "judgments": report.judgments,
            "stale": report_is_stale(report),
            "run": report.pk,
        }
    )


def start_report_response(request: Request, project: Project, params: dict[str, Any]) -> Response:
    """202 with a new run of `params`, 409 while one of its kind runs (ReportError: the caller's)."""
    try:
        run = report_run_start(project=project, params=params, user=request.user)
    except ReportRunBusy as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return Response(
        ReportRunOutput(run, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
    )


class ReportRunDetailApi(APIView):
    @extend_schema(responses=ReportRunOutput, summary="A report run's status and progress")
    def get(self, request: Request, slug: str, run_id: int) -> Response:
        project, _ = project_for(request.user, slug, need=RESEARCH)
        run = get_object_or_404(
            ReportRun.objects.select_related("project"), pk=run_id, project=project
        )
        return Response(ReportRunOutput(run, context={"request": request}).data)
