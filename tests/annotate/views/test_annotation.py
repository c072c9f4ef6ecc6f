"""The annotation screen: access, rendering, submitting, skipping, refusing bad input, XSS."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotate.models import Assignment, Item, Judge, Judgment

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def one_aspect(make_project: Any, member: Any, set_role: Any) -> Any:
    project = make_project("one", items=3, gold_rate=0.0, aspects=["overall"])
    set_role(project, member, "annotator")
    return project


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def screen(project: Any) -> str:
    return reverse("annotate", args=[project.slug])


def submit_url(a: Assignment) -> str:
    return reverse("annotate_submit", args=[a.project.slug, a.pk])


def skip_url(a: Assignment) -> str:
    return reverse("annotate_skip", args=[a.project.slug, a.pk])


def held(project: Any, user: Any, order: list[int] | None = None) -> Assignment:
    a = Assignment.objects.get(project=project, annotator=user, status="active")
    if order is not None:
        Assignment.objects.filter(pk=a.pk).update(presentation_order=order)
        a.refresh_from_db()
    return a


# --- Access -------------------------------------------------------------------------------------


def test_it_requires_login(client: Client, project: Any) -> None:
    response = client.get(screen(project))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_an_outsider_gets_404(client: Client, project: Any, outsider: Any) -> None:
    assert login(client, outsider).get(screen(project)).status_code == 404
    assert Assignment.objects.count() == 0


def test_an_outsider_cannot_submit_skip_or_renew(
    client: Client, project: Any, member: Any, outsider: Any
) -> None:
    login(client, member).get(screen(project))
    a = held(project, member)
    login(client, outsider)
    assert client.post(submit_url(a), {"aspect-0": "1"}).status_code == 404
    assert client.post(skip_url(a), {"reason": "other"}).status_code == 404
    renew = reverse("annotate_renew", args=[project.slug, a.pk])
    assert client.post(renew).status_code == 404
    assert Judgment.objects.count() == 0


@pytest.mark.parametrize("role", ["annotator", "researcher", "admin"])
def test_every_member_role_can_annotate(
    client: Client, project: Any, member: Any, set_role: Any, role: str
) -> None:
    set_role(project, member, role)
    response = login(client, member).get(screen(project))
    assert response.status_code == 200
    assert Assignment.objects.filter(annotator=member).count() == 1


def test_the_owner_can_annotate(client: Client, project: Any, owner: Any) -> None:
    assert login(client, owner).get(screen(project)).status_code == 200


def test_the_project_page_shows_every_member_the_annotate_button(
    client: Client, project: Any, member: Any
) -> None:
    response = login(client, member).get(reverse("project", args=[project.slug]))
    assert screen(project) in response.content.decode()


def test_someone_elses_assignment_is_a_404(
    client: Client, project: Any, member: Any, owner: Any
) -> None:
    login(client, member).get(screen(project))
    a = held(project, member)
    response = login(client, owner).post(submit_url(a), {f"aspect-{i}": "1" for i in range(4)})
    assert response.status_code == 404
    assert Judgment.objects.count() == 0


def test_submitting_needs_post(client: Client, one_aspect: Any, member: Any) -> None:
    login(client, member).get(screen(one_aspect))
    assert client.get(submit_url(held(one_aspect, member))).status_code == 405


# --- The screen ---------------------------------------------------------------------------------


def test_reloading_the_screen_resumes_the_same_item(
    client: Client, one_aspect: Any, member: Any
) -> None:
    login(client, member).get(screen(one_aspect))
    client.get(screen(one_aspect))
    assert Assignment.objects.filter(annotator=member).count() == 1


def test_the_screen_shows_responses_in_the_presentation_order(
    client: Client, one_aspect: Any, member: Any
) -> None:
    login(client, member).get(screen(one_aspect))
    a = held(one_aspect, member, order=[1, 0])
    html = client.get(screen(one_aspect)).content.decode()
    first, second = (html.index(f"Response {j} to prompt") for j in (1, 0))
    assert first < second, "canonical response 1 is shown first, as A"
    assert "model-0" not in html and "model-1" not in html, "model names stay hidden"
    assert f'data-assignment="{a.pk}"' in html


def test_the_pairwise_scale_uses_the_project_labels_with_key_hints(
    client: Client, make_project: Any, member: Any, set_role: Any
) -> None:
    labels = ["A ≫", "A >", "Same", "B >", "B ≫"]
    project = make_project("labels", items=1, aspects=["overall"], scale_labels=labels)
    set_role(project, member, "annotator")
    html = login(client, member).get(screen(project)).content.decode()
    for n, label in enumerate(labels, start=1):
        assert f"<kbd>{n}</kbd><span>{label}</span>" in html.replace("&gt;", ">").replace(
            "&lt;", "<"
        )


def test_there_is_no_tie_choice_when_ties_are_off(
    client: Client, make_project: Any, member: Any, set_role: Any
) -> None:
    project = make_project("noties", items=1, aspects=["overall"], allow_ties=False)
    set_role(project, member, "annotator")
    html = login(client, member).get(screen(project)).content.decode()
    assert 'name="aspect-0" value="0"' not in html
    assert 'name="aspect-0" value="2" data-key="1"' in html
    assert 'name="aspect-0" value="-2" data-key="5"' in html, "keys keep their places"


def test_one_row_per_aspect(client: Client, project: Any, member: Any) -> None:
    html = login(client, member).get(screen(project)).content.decode()
    for index, aspect in enumerate(project.aspects):
        assert f"<legend>{aspect}</legend>" in html
        assert f'name="aspect-{index}"' in html


def test_it_renders_markdown_and_chat_turns(client: Client, one_aspect: Any, member: Any) -> None:
    Item.objects.filter(project=one_aspect).update(
        prompt=[
            {"role": "system", "content": "Be *brief*."},
            {"role": "user", "content": "Make a table"},
        ],
        responses=[
            {"model": "m0", "text": "| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two"},
            {"model": "m1", "text": "```python\nprint('<hi>')\n```"},
        ],
    )
    html = login(client, member).get(screen(one_aspect)).content.decode()
    assert '<div class="role">system</div>' in html and "<em>brief</em>" in html
    assert "<table>" in html and "<li>one</li>" in html
    assert "<code class=\"language-python\">print('&lt;hi&gt;')" in html


def test_llm_html_and_scripts_render_inert(client: Client, one_aspect: Any, member: Any) -> None:
    evil = (
        "<script>alert('x')</script> <img src=x onerror=\"alert(1)\"> "
        '[click me](javascript:alert(2)) <a href="javascript:alert(3)">raw link</a> '
        '<iframe src="https://evil.example"></iframe>'
    )
    Item.objects.filter(project=one_aspect).update(
        prompt=evil, responses=[{"model": "m0", "text": evil}, {"model": "m1", "text": evil}]
    )
    html = login(client, member).get(screen(one_aspect)).content.decode()
    body = html[html.index('id="work"') :]
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert" in body, "the script shows as text"
    assert not re.search(r"<img[^>]*onerror", body)
    assert not re.search(r"<[a-z]+[^>]*\son\w+=", body), "no event handler attribute in any tag"
    assert not re.search(r"<a[^>]*href=\"?javascript:", body, re.IGNORECASE)
    assert "<iframe" not in body


def test_the_guidelines_are_on_the_page(
    client: Client, make_project: Any, member: Any, set_role: Any
) -> None:
    project = make_project("guide", items=1, guidelines="# Be fair\n\nPrefer **correct** answers.")
    set_role(project, member, "annotator")
    html = login(client, member).get(screen(project)).content.decode()
    assert "<h1>Be fair</h1>" in html and "<strong>correct</strong>" in html
    assert "<kbd>?</kbd>" in html


def test_ai_suggestions_show_only_when_the_project_turns_them_on(
    client: Client, one_aspect: Any, member: Any
) -> None:
    item = one_aspect.items.order_by("pk").first()
    Item.objects.filter(project=one_aspect).exclude(pk=item.pk).delete()
    judge = Judge.objects.create(name="smol")
    Judgment.objects.create(
        item=item, aspect="overall", kind="ai", source="smol", judge=judge,
        task_type="pairwise", value={"strength": 2}, confidence=0.9, prompt_version="v1",
    )  # fmt: skip
    login(client, member).get(screen(one_aspect))
    held(one_aspect, member, order=[1, 0])
    assert "smol:" not in client.get(screen(one_aspect)).content.decode()
    one_aspect.show_ai_suggestions = True
    one_aspect.save()
    html = client.get(screen(one_aspect)).content.decode()
    # Canonical A much better, shown second: on this screen that is "B is much better".
    assert "smol: B is much better (90% sure)" in html


def test_progress_is_shown(client: Client, one_aspect: Any, member: Any) -> None:
    html = login(client, member).get(screen(one_aspect)).content.decode()
    assert '<b data-progress="done">0</b>' in html
    assert '<b data-progress="remaining">2</b>' in html


def test_an_empty_queue_says_so(client: Client, one_aspect: Any, member: Any) -> None:
    one_aspect.items.update(route=Item.Route.AI)
    response = login(client, member).get(screen(one_aspect))
    assert response.status_code == 200 and "Nothing left for you here" in response.content.decode()


def test_htmx_gets_only_the_work_partial(client: Client, one_aspect: Any, member: Any) -> None:
    html = login(client, member).get(screen(one_aspect), **HTMX).content.decode()
    assert html.lstrip().startswith('<div id="work"') and "<html" not in html


# --- Submitting ---------------------------------------------------------------------------------


def test_a_form_submit_stores_the_judgment_in_canonical_order_and_redirects(
    client: Client, one_aspect: Any, member: Any
) -> None:
    login(client, member).get(screen(one_aspect))
    a = held(one_aspect, member, order=[1, 0])
    response = client.post(
        submit_url(a), {"aspect-0": "2", "confidence": "medium", "rationale": "B is wrong"}
    )
    assert response.status_code == 302 and response["Location"] == screen(one_aspect)
    stored = Judgment.objects.get()
    # "A much better" where A was canonical response 1.
    assert stored.value == {"strength": -2}
    assert (stored.confidence_label, stored.rationale) == ("medium", "B is wrong")
    assert stored.time_spent_ms is not None


def test_an_htmx_submit_answers_with_the_next_item(
    client: Client, one_aspect: Any, member: Any
) -> None:
    login(client, member).get(screen(one_aspect))
    a = held(one_aspect, member)
    response = client.post(submit_url(a), {"aspect-0": "1"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="work"')
    nxt = held(one_aspect, member)
    assert nxt.pk != a.pk and f'data-assignment="{nxt.pk}"' in html
    assert '<b data-progress="done">1</b>' in html


def test_a_double_submit_stores_one_judgment_and_answers_200_both_times(
    client: Client, one_aspect: Any, member: Any
) -> None:
    login(client, member).get(screen(one_aspect))
    a = held(one_aspect, member)
    first = client.post(submit_url(a), {"aspect-0": "1"}, **HTMX)
    second = client.post(submit_url(a), {"aspect-0": "1"}, **HTMX)
    assert first.status_code == second.status_code == 200
    assert Judgment.objects.count() == 1
    assert Item.objects.get(pk=a.item_id).human_done == 1


@pytest.mark.parametrize("value", ["7", "-3", "abc", "", "1.5"])
def test_an_unknown_choice_is_a_400_and_changes_nothing(
    client: Client, one_aspect: Any, member: Any, value: str
) -> None:
    login(client, member).get(screen(one_aspect))
    a = held(one_aspect, member)
    response = client.post(submit_url(a), {"aspect-0": value})
    assert response.status_code == 400
    assert Judgment.objects.count() == 0
    a.refresh_from_db()
    assert a.status == "active"
    assert "overall" in response.content.decode()


def test_an_htmx_400_targets_the_message_box(client: Client, one_aspect: Any, member: Any) -> None:
    login(client, member).get(screen(one_aspect))
    a = held(one_aspect, member)
    response = client.post(submit_url(a), {"aspect-0": "9"}, **HTMX)
    assert response.status_code == 400
    assert response["HX-Retarget"] == "#problem"
    assert 'id="problem"' in response.content.decode()


def test_an_unknown_confidence_is_a_400(client: Client, one_aspect: Any, member: Any) -> None:
    login(client, member).get(screen(one_aspect))
    a = held(one_aspect, member)
    response = client.post(submit_url(a), {"aspect-0": "1", "confidence": "sure"})
    assert response.status_code == 400 and Judgment.objects.count() == 0


def test_a_submit_after_the_hold_expired_is_a_409(
    client: Client, one_aspect: Any, member: Any
) -> None:
    login(client, member).get(screen(one_aspect))
    a = held(one_aspect, member)
    Assignment.objects.filter(pk=a.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.post(submit_url(a), {"aspect-0": "1"}, **HTMX)
    assert response.status_code == 409
    assert "expired" in response.content.decode()
    assert Judgment.objects.count() == 0


def test_ranking_form_maps_ranks_back_to_canonical_order(
    client: Client, make_project: Any, member: Any, set_role: Any
) -> None:
    project = make_project("rank", items=1, task_type="ranking", k=4, aspects=["overall"])
    set_role(project, member, "annotator")
    login(client, member).get(screen(project))
    a = held(project, member, order=[2, 0, 3, 1])
    ranks = {"aspect-0-rank-0": "1", "aspect-0-rank-1": "2", "aspect-0-rank-2": "3",
             "aspect-0-rank-3": "4"}  # fmt: skip
    assert client.post(submit_url(a), ranks).status_code == 302
    assert Judgment.objects.get().value == {"ranks": [2, 4, 1, 3]}


def test_a_ranking_that_is_not_a_permutation_is_a_400(
    client: Client, make_project: Any, member: Any, set_role: Any
) -> None:
    project = make_project(
        "rank2", items=1, task_type="ranking", k=3, aspects=["overall"], allow_ties=False
    )
    set_role(project, member, "annotator")
    login(client, member).get(screen(project))
    a = held(project, member)
    response = client.post(
        submit_url(a), {"aspect-0-rank-0": "1", "aspect-0-rank-1": "1", "aspect-0-rank-2": "2"}
    )
    assert response.status_code == 400 and Judgment.objects.count() == 0


def test_best_worst_form_maps_back_to_canonical_order(
    client: Client, make_project: Any, member: Any, set_role: Any
) -> None:
    project = make_project("bws", items=1, task_type="kwise", k=4, aspects=["overall"])
    set_role(project, member, "annotator")
    login(client, member).get(screen(project))
    a = held(project, member, order=[3, 1, 0, 2])
    response = client.post(submit_url(a), {"aspect-0-best": "0", "aspect-0-worst": "2"})
    assert response.status_code == 302
    assert Judgment.objects.get().value == {"best": 3, "worst": 0}


# --- Skipping -----------------------------------------------------------------------------------


def test_skipping_with_a_reason_frees_the_item_and_serves_the_next(
    client: Client, one_aspect: Any, member: Any
) -> None:
    login(client, member).get(screen(one_aspect))
    a = held(one_aspect, member)
    response = client.post(skip_url(a), {"reason": "unclear"}, **HTMX)
    assert response.status_code == 200
    a.refresh_from_db()
    assert (a.status, a.skip_reason) == ("skipped", "unclear")
    assert Item.objects.get(pk=a.item_id).human_assigned == 0
    assert held(one_aspect, member).item_id != a.item_id


def test_an_other_reason_keeps_the_annotators_words(
    client: Client, one_aspect: Any, member: Any
) -> None:
    login(client, member).get(screen(one_aspect))
    a = held(one_aspect, member)
    client.post(skip_url(a), {"reason": "other", "reason_text": "Needs a lawyer"})
    a.refresh_from_db()
    assert a.skip_reason == "Needs a lawyer"


def test_skipping_without_a_reason_is_a_400(client: Client, one_aspect: Any, member: Any) -> None:
    login(client, member).get(screen(one_aspect))
    a = held(one_aspect, member)
    assert client.post(skip_url(a), {}).status_code == 400
    a.refresh_from_db()
    assert a.status == "active"


def test_renewing_extends_the_hold(client: Client, one_aspect: Any, member: Any) -> None:
    login(client, member).get(screen(one_aspect))
    a = held(one_aspect, member)
    Assignment.objects.filter(pk=a.pk).update(expires_at=timezone.now() + timedelta(minutes=1))
    response = client.post(reverse("annotate_renew", args=[one_aspect.slug, a.pk]))
    assert response.status_code == 204
    a.refresh_from_db()
    assert a.expires_at > timezone.now() + timedelta(minutes=20)


def test_single_newlines_in_a_response_stay_line_breaks() -> None:
    from annotate.views.annotation import markdown_html

    html = markdown_html("A cat with a terminal screen\nWrote loops that were tidy and clean;")
    assert "screen<br" in html and "<script" not in markdown_html("<script>x</script>\nline")
