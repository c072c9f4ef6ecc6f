from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotate.api import annotation, imports, projects

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("projects/", projects.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<slug:slug>/", projects.ProjectDetailApi.as_view(), name="api-project"),
    path(
        "projects/<slug:slug>/imports/", imports.ImportCreateApi.as_view(), name="api-import-create"
    ),
    path(
        "projects/<slug:slug>/imports/<int:batch_id>/",
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
        "projects/<slug:slug>/assignments/<int:assignment_id>/submit/",
        annotation.AssignmentSubmitApi.as_view(),
        name="api-assignment-submit",
    ),
    path(
        "projects/<slug:slug>/assignments/<int:assignment_id>/skip/",
        annotation.AssignmentSkipApi.as_view(),
        name="api-assignment-skip",
    ),
    path("projects/<slug:slug>/progress/", annotation.ProgressApi.as_view(), name="api-progress"),
]
