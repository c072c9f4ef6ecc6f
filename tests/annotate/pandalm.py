"""The PandaLM test set as a project: 999 pairwise items, 3 human annotators, 2 AI judges.

Shared by the label, agreement, export and leaderboard tests (real labels nobody here wrote).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HUMANS = ("annotator1", "annotator2", "annotator3")


def pandalm_project(shared_data: Path, *, slug: str = "pandalm", judges: bool = True) -> Any:
    from annotate.services.imports import items_import, labels_import, project_ensure

    folder = shared_data / "pandalm"
    project, _ = project_ensure(slug=slug, task_type="pairwise")
    project.aspects = ["overall"]
    project.save(update_fields=["aspects"])
    items_import(
        project=project,
        path=folder / "testset-v1.json",
        maps=[
            "prompt=instruction+input",
            "id=idx",
            "response_1=response1",
            "response_2=response2",
            "model_1=cmp_key|split:_:0",
            "model_2=cmp_key|split:_:1",
        ],
    )
    for name in HUMANS:
        labels_import(
            project=project,
            path=folder / "testset-v1.json",
            kind="human",
            source=name,
            maps=["id=idx", f"label={name}"],
        )
    if judges:
        labels_import(
            project=project,
            path=folder / "gpt-3.5-turbo-testset-v1.json",
            source="gpt-3.5-turbo",
            maps=["id=idx", "label=gpt_result", "rationale=gpt_reason"],
            skip_invalid=True,
        )
        labels_import(
            project=project,
            path=folder / "pandalm-7b-testset-v1.json",
            source="pandalm-7b",
            maps=["id=idx", "label=pandalm_result"],
        )
    return project
