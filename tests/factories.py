"""Rows that many test files need in the same shape."""

from __future__ import annotations

from typing import Any

import numpy as np

from annotate.models import Judge, Judgment


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


def add_imported_judges(project: Any, accuracy: dict[str, float], *, seed: int = 0) -> Any:
    """One imported AI judge per name, each right (A on odd items, B on even ones) with its
    given probability on every pairwise item of `project`. Returns the project."""
    rng = np.random.default_rng(seed)
    judges = {n: Judge.objects.create(name=n, backend=Judge.Backend.IMPORTED) for n in accuracy}
    for i, item in enumerate(project.items.order_by("pk")):
        truth = 1 if i % 2 else -1
        for name, judge in judges.items():
            Judgment.objects.create(
                item=item,
                kind="ai",
                source=name,
                task_type="pairwise",
                value={"strength": truth if rng.random() < accuracy[name] else -truth},
                judge=judge,
                prompt_version="imported",
            )
    return project
