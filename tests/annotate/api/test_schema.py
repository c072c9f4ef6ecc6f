"""Schemathesis against our own OpenAPI schema: every operation, fuzzed, never answers 5xx.

The Django app runs in-process (WSGI), authenticated with an owner's token, on a small project
that has items, human and AI judgments, final labels and a finished export, so that fuzzed
requests reach real code paths. Path slugs are pinned to that project (random slugs would only
exercise the 404 branch); the number of examples per operation is bounded to keep this quick.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token

from annotate.models import Judge, Judgment
from annotate.services import exports, labels, reports
from annotate.services.labels import final_labels_compute

pytestmark = pytest.mark.django_db

EXAMPLES = 6


@pytest.fixture
def seeded(project: Any, owner: Any) -> tuple[Any, str, dict[str, int]]:
    judge = Judge.objects.create(name="judge-1", backend="imported")
    project.judges.add(judge)
    for n, item in enumerate(project.items.all()):
        Judgment.objects.create(
            item=item,
            kind="human",
            source="x",
            external_annotator="x",
            task_type="pairwise",
            value={"strength": 1},
        )
        Judgment.objects.create(
            item=item,
            kind="human",
            source="y",
            external_annotator="y",
            task_type="pairwise",
            value={"strength": -1 if n else 2},
        )
        Judgment.objects.create(
            item=item,
            kind="ai",
            source="judge-1",
            judge=judge,
            prompt_version="v1",
            task_type="pairwise",
            value={"strength": 1},
            probabilities={"a": 0.6, "b": 0.3, "tie": 0.1},
            confidence=0.6,
        )
    final_labels_compute(project=project)
    label_run = labels.label_run_start(project=project, enqueue=False)
    labels.label_run_execute(run_id=label_run.pk)
    for params in ({"kind": "quality"}, {"kind": "leaderboard"}):  # stored reports to return
        report = reports.report_run_start(project=project, params=params, enqueue=False)
        reports.report_run_execute(run_id=report.pk)
    export = exports.export_create(project=project, shape="dpo", file_format="jsonl", enqueue=False)
    exports.export_run(export=exports.export_claim(export_id=export.pk))
    return (
        project,
        Token.objects.create(user=owner).key,
        {
            "export_id": export.pk,
            "item_id": project.items.first().pk,
            "run_id": label_run.pk,  # judge and routing runs of that id are a 404: also fine
        },
    )


@pytest.fixture
def keep_connections() -> Any:
    """Like Django's test client: the real WSGI handler closes the database connection after each
    request, which would close the test's transaction; keep it open while the app runs here."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_no_operation_answers_a_server_error(
    seeded: tuple[Any, str, dict[str, int]], keep_connections: Any
) -> None:
    project, token, known_ids = seeded
    auth = {"Authorization": f"Token {token}"}
    app = get_wsgi_application()
    schema = schemathesis.openapi.from_wsgi("/api/schema/", app, headers=auth)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        _fuzz(operation, project.slug, known_ids, auth, failures)()
    assert operations >= 20
    assert not failures, "\n".join(sorted(set(failures)))


def _fuzz(
    operation: Any, slug: str, known_ids: dict[str, int], auth: dict[str, str], failures: list[str]
) -> Any:
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        params = case.path_parameters or {}
        if "slug" in params:
            params["slug"] = slug
        for name, pk in known_ids.items():
            # Half the drawn ids become a real row, so detail endpoints run past their 404.
            if isinstance(params.get(name), int) and params[name] % 2 == 0:
                params[name] = pk
        response = case.call(headers=auth)
        if response.status_code >= 500:
            failures.append(
                f"{operation.method.upper()} {case.formatted_path} → {response.status_code}"
            )

    return check
