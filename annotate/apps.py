from __future__ import annotations

from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    name = "annotate"
    verbose_name = "hybridpref"
    default_auto_field = "django.db.models.BigAutoField"
