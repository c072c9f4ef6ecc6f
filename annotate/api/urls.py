from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from annotate import converters  # noqa: F401  (registers the `id` path converter)
from annotate.api import annotation, imports, projects
from annotate.api import exports as export_api
from annotate.api import items as item_api
from annotate.api import judge_runs as judge_run_api
from annotate.api import judgments as judgment_api
from annotate.api import labels as label_api
from annotate.api import leaderboard as leaderboard_api
from annotate.api import reports as report_api
from annotate.api import routing as routing_api

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("projects/", projects.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<slug:slug>/", projects.ProjectDetailApi.as_view(), name="api-project"),
    path(
        "projects/<slug:slug>/imports/", imports.ImportCreateApi.as_view(), name="api-import-create"
    ),
    path(
        "projects/<slug:slug>/imports/<id:batch_id>/",
        imports.ImportDetailApi.as_view(),
        name="api-import",
    ),
    # Human queue
    path(
        "projects/<slug:slug>/assignments/next/",
        annotation.AssignmentNextApi.as_view(),
        name="api-assignment-next",
    ),
    path(
        "projects/<slug:slug>/assignments/<id:assignment_id>/submit/",
        annotation.AssignmentSubmitApi.as_view(),
        name="api-assignment-submit",
    ),
    path(
        "projects/<slug:slug>/assignments/<id:assignment_id>/skip/",
        annotation.AssignmentSkipApi.as_view(),
        name="api-assignment-skip",
    ),
    path("projects/<slug:slug>/progress/", annotation.ProgressApi.as_view(), name="api-progress"),
    # Datasets out: token, items, judgments, judge runs, final labels, agreement, exports,
    # leaderboard, routing
    path("token/", obtain_auth_token, name="api-token"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("projects/<slug:slug>/items/", item_api.ItemListApi.as_view(), name="api-items"),
    path(
        "projects/<slug:slug>/items/<id:item_id>/",
        item_api.ItemDetailApi.as_view(),
        name="api-item",
    ),
    path(
        "projects/<slug:slug>/judgments/",
        judgment_api.JudgmentListApi.as_view(),
        name="api-judgments",
    ),
    path(
        "projects/<slug:slug>/judge-runs/",
        judge_run_api.JudgeRunListApi.as_view(),
        name="api-judge-runs",
    ),
    path(
        "projects/<slug:slug>/judge-runs/<id:run_id>/",
        judge_run_api.JudgeRunDetailApi.as_view(),
        name="api-judge-run",
    ),
    path(
        "projects/<slug:slug>/judge-runs/<id:run_id>/cancel/",
        judge_run_api.JudgeRunCancelApi.as_view(),
        name="api-judge-run-cancel",
    ),
    path("projects/<slug:slug>/labels/", label_api.FinalLabelListApi.as_view(), name="api-labels"),
    path(
        "projects/<slug:slug>/labels/compute/",
        label_api.FinalLabelComputeApi.as_view(),
        name="api-labels-compute",
    ),
    path(
        "projects/<slug:slug>/labels/runs/<id:run_id>/",
        label_api.LabelRunDetailApi.as_view(),
        name="api-label-run",
    ),
    path("projects/<slug:slug>/agreement/", label_api.AgreementApi.as_view(), name="api-agreement"),
    path(
        "projects/<slug:slug>/reports/runs/<id:run_id>/",
        report_api.ReportRunDetailApi.as_view(),
        name="api-report-run",
    ),
    path("projects/<slug:slug>/exports/", export_api.ExportListApi.as_view(), name="api-exports"),
    path(
        "projects/<slug:slug>/exports/<id:export_id>/",
        export_api.ExportDetailApi.as_view(),
        name="api-export",
    ),
    path(
        "projects/<slug:slug>/exports/<id:export_id>/download/",
        export_api.ExportDownloadApi.as_view(),
        name="api-export-download",
    ),
    path(
        "projects/<slug:slug>/leaderboard/",
        leaderboard_api.LeaderboardApi.as_view(),
        name="api-leaderboard",
    ),
    path(
        "projects/<slug:slug>/routing/runs/",
        routing_api.RoutingRunListApi.as_view(),
        name="api-routing-runs",
    ),
    path(
        "projects/<slug:slug>/routing/runs/<id:run_id>/",
        routing_api.RoutingRunDetailApi.as_view(),
        name="api-routing-run",
    ),
    path(
        "projects/<slug:slug>/routing/runs/<id:run_id>/decisions/",
        routing_api.RoutingDecisionListApi.as_view(),
        name="api-routing-decisions",
    ),
    path(
        "projects/<slug:slug>/routing/runs/<id:run_id>/apply/",
        routing_api.RoutingRunApplyApi.as_view(),
        name="api-routing-apply",
    ),
]
