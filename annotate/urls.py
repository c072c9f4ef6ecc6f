"""URLs of the app. Each area adds its lines in its own block to keep merges simple."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from annotate import converters  # noqa: F401  (registers the `id` path converter)
from annotate.views import annotation, imports, judging, projects, routing
from annotate.views import exports as export_views
from annotate.views import leaderboard as leaderboard_views
from annotate.views import quality as quality_views

urlpatterns = [
    # API first: Django tries patterns in order, and the annotation API's next/submit are the
    # busiest requests (no pattern below starts with "api/", so the order changes nothing else).
    path("api/", include("annotate.api.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", projects.home, name="home"),
    path("p/<slug:slug>/", projects.project, name="project"),
    # Import
    path("p/<slug:slug>/import/", imports.import_upload, name="import_upload"),
    path("p/<slug:slug>/import/<id:batch_id>/", imports.import_status, name="import_status"),
    # AI judges
    path("p/<slug:slug>/judges/", judging.judges, name="judges"),
    path("p/<slug:slug>/judges/run/", judging.judge_run_start, name="judge_run_start"),
    path("p/<slug:slug>/judges/runs/", judging.judge_runs, name="judge_runs"),
    path(
        "p/<slug:slug>/judges/runs/<id:run_id>/cancel/",
        judging.judge_run_cancel,
        name="judge_run_cancel",
    ),
    path("p/<slug:slug>/judges/prompt/", judging.rubric_save, name="rubric_save"),
    # Annotation screen and human queue
    path("p/<slug:slug>/annotate/", annotation.annotate, name="annotate"),
    path(
        "p/<slug:slug>/annotate/<id:assignment_id>/submit/",
        annotation.annotate_submit,
        name="annotate_submit",
    ),
    path(
        "p/<slug:slug>/annotate/<id:assignment_id>/skip/",
        annotation.annotate_skip,
        name="annotate_skip",
    ),
    path(
        "p/<slug:slug>/annotate/<id:assignment_id>/renew/",
        annotation.annotate_renew,
        name="annotate_renew",
    ),
    # Routing
    path("p/<slug:slug>/routing/", routing.routing_page, name="routing"),
    path("p/<slug:slug>/routing/preview/", routing.routing_preview, name="routing_preview"),
    path("p/<slug:slug>/routing/<id:run_id>/", routing.routing_run, name="routing_run"),
    path("p/<slug:slug>/routing/<id:run_id>/apply/", routing.routing_apply, name="routing_apply"),
    # Datasets out: quality, leaderboard, exports
    path("p/<slug:slug>/quality/", quality_views.quality, name="quality"),
    path("p/<slug:slug>/quality/compute/", quality_views.quality_compute, name="quality_compute"),
    path(
        "p/<slug:slug>/quality/label-run/",
        quality_views.quality_label_run,
        name="quality_label_run",
    ),
    path(
        "p/<slug:slug>/quality/report/compute/",
        quality_views.quality_report_compute,
        name="quality_report_compute",
    ),
    path(
        "p/<slug:slug>/quality/report/run/",
        quality_views.quality_report_run,
        name="quality_report_run",
    ),
    path("p/<slug:slug>/leaderboard/", leaderboard_views.leaderboard, name="leaderboard"),
    path(
        "p/<slug:slug>/leaderboard/compute/",
        leaderboard_views.leaderboard_compute,
        name="leaderboard_compute",
    ),
    path(
        "p/<slug:slug>/leaderboard/run/", leaderboard_views.leaderboard_run, name="leaderboard_run"
    ),
    path("p/<slug:slug>/exports/", export_views.exports, name="exports"),
    path("p/<slug:slug>/exports/list/", export_views.export_list, name="export_list"),
    path("p/<slug:slug>/exports/<id:export_id>/", export_views.export_detail, name="export_detail"),
    path(
        "p/<slug:slug>/exports/<id:export_id>/delete/",
        export_views.export_delete,
        name="export_delete",
    ),
    path(
        "p/<slug:slug>/exports/<id:export_id>/download.zip",
        export_views.export_download_zip,
        name="export_download_zip",
    ),
    path(
        "p/<slug:slug>/exports/<id:export_id>/files/<path:name>",
        export_views.export_download,
        name="export_download",
    ),
]
