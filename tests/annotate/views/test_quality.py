from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from annotate.models import FinalLabel, Judge, Judgment

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(project: Any) -> Any:
    judge = Judge.objects.create(name="gpt-judge", backend="imported")
    project.judges.add(judge)
    for item in project.items.all():
        for who, s in (("ann-a", 2), ("ann-b", 1 if item.external_id != "0" else -2)):
            Judgment.objects.create(
                item=item,
                kind="human",
                source=who,
                external_annotator=who,
                task_type="pairwise",
                value={"strength": s},
                time_spent_ms=4000,
            )
        Judgment.objects.create(
            item=item,
            kind="ai",
            source="gpt-judge",
            judge=judge,
            prompt_version="v1",
            task_type="pairwise",
            value={"strength": 1},
            confidence=0.8,
        )
    return project


def url(project: Any) -> str:
    return reverse("quality", args=[project.slug])


def test_it_shows_agreement_annotators_judges_and_charts(
    client: Any, owner: Any, judged: Any
) -> None:
    from annotate.services.labels import final_labels_compute

    final_labels_compute(project=judged)
    client.force_login(owner)
    response = client.get(url(judged))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Krippendorff" in html
    assert "ann-a" in html and "ann-b" in html
    assert "gpt-judge" in html
    assert "<svg" in html and "<rect" in html
    assert "Most disputed items" in html and "<code>0</code>" in html
    assert "cdn" not in html.lower()


def test_it_works_on_an_empty_project(client: Any, owner: Any, project: Any) -> None:
    client.force_login(owner)
    response = client.get(url(project))
    assert response.status_code == 200
    assert "No human judgments yet" in response.content.decode()


def test_researchers_can_see_it(client: Any, member: Any, set_role: Any, judged: Any) -> None:
    set_role(judged, member, "researcher")
    client.force_login(member)
    assert client.get(url(judged)).status_code == 200


def test_it_forbids_annotators(client: Any, member: Any, judged: Any) -> None:
    client.force_login(member)
    assert client.get(url(judged)).status_code == 403


def test_it_hides_the_project_from_outsiders(client: Any, outsider: Any, judged: Any) -> None:
    client.force_login(outsider)
    assert client.get(url(judged)).status_code == 404


def test_it_requires_login(client: Any, judged: Any) -> None:
    response = client.get(url(judged))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_compute_writes_final_labels_and_says_so(client: Any, owner: Any, judged: Any) -> None:
    client.force_login(owner)
    response = client.post(
        reverse("quality_compute", args=[judged.slug]), {"method": "dawid_skene"}, follow=True
    )
    assert response.status_code == 200
    assert FinalLabel.objects.filter(item__project=judged).count() == 5
    assert set(FinalLabel.objects.values_list("method", flat=True)) == {"dawid_skene"}
    assert "Computed 5 final labels" in response.content.decode()


def test_compute_refuses_an_unknown_method(client: Any, owner: Any, judged: Any) -> None:
    client.force_login(owner)
    response = client.post(
        reverse("quality_compute", args=[judged.slug]), {"method": "vibes"}, follow=True
    )
    assert "not one of" in response.content.decode()
    assert not FinalLabel.objects.exists()


def test_compute_requires_post(client: Any, owner: Any, judged: Any) -> None:
    client.force_login(owner)
    assert client.get(reverse("quality_compute", args=[judged.slug])).status_code == 405


def test_compute_forbids_annotators_and_hides_from_outsiders(
    client: Any, member: Any, outsider: Any, judged: Any
) -> None:
    client.force_login(member)
    assert client.post(reverse("quality_compute", args=[judged.slug])).status_code == 403
    client.force_login(outsider)
    assert client.post(reverse("quality_compute", args=[judged.slug])).status_code == 404
    assert not FinalLabel.objects.exists()
