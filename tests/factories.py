"""Rows that many test files need in the same shape."""

from __future__ import annotations

from typing import Any

from annotate.models import Judgment


def label_every_item(project: Any, *, strength: int) -> Any:
    """One outside annotator's pairwise label of `strength` on every item of `project`: what
    exports, leaderboards and final labels read. Returns the project, for fixtures."""
    for item in project.items.all():
        Judgment.objects.create(
            item=item,
            kind="human",
            source="x",
            external_annotator="x",
            task_type="pairwise",
            value={"strength": strength},
        )
    return project
