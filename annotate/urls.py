"""URLs of the app. Each area adds its lines in its own block to keep merges simple."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from annotate.views import imports, projects

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", projects.home, name="home"),
    path("p/<slug:slug>/", projects.project, name="project"),
    # Import
    path("p/<slug:slug>/import/", imports.import_upload, name="import_upload"),
    path("p/<slug:slug>/import/<int:batch_id>/", imports.import_status, name="import_status"),
    # API
    path("api/", include("annotate.api.urls")),
]
