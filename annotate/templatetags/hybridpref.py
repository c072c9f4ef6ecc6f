from __future__ import annotations

from typing import Any

from django import template

from annotate import verdicts

register = template.Library()


@register.filter
def verdict(value: dict, project: Any) -> str:
    """`{{ judgment.value|verdict:project }}`: the verdict in words, on the project's own scale."""
    return verdicts.describe(project.task_type, value, scale_labels=project.scale_labels)
