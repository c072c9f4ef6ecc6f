from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotate.api import imports, projects

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
]
