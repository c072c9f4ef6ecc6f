"""The Django admin works for every model of the app: list, add form, and a change form."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.urls import reverse

from annotate import models

pytestmark = pytest.mark.django_db

APP_MODELS = [m for m in admin.site._registry if m._meta.app_label == "annotate"]


def test_every_model_of_the_app_is_registered() -> None:
    from django.apps import apps

    assert set(apps.get_app_config("annotate").get_models()) == set(APP_MODELS)


@pytest.mark.parametrize("model", APP_MODELS, ids=lambda m: m.__name__)
def test_the_admin_lists_and_adds_each_model(model: Any, admin_client: Any, project: Any) -> None:
    opts = model._meta
    assert (
        admin_client.get(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        ).status_code
        == 200
    )
    assert (
        admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code
        == 200
    )


def test_the_admin_opens_an_item_and_a_judgment(
    admin_client: Any, project: Any, owner: Any
) -> None:
    item = project.items.first()
    judgment = models.Judgment.objects.create(
        item=item,
        kind="human",
        source="annotate",
        task_type="pairwise",
        value={"strength": 1},
        annotator=owner,
    )
    for obj in (project, item, judgment):
        opts = obj._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        assert admin_client.get(url).status_code == 200


def test_the_admin_opens_a_final_labels_run_with_its_summary(
    admin_client: Any, project: Any
) -> None:
    from annotate.services.labels import label_run_execute, label_run_start

    run = label_run_start(project=project, enqueue=False)
    label_run_execute(run_id=run.pk)
    url = reverse("admin:annotate_labelrun_change", args=[run.pk])
    response = admin_client.get(url)
    assert response.status_code == 200 and "succeeded" in response.content.decode()
