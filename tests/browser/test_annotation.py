"""The annotation screen in real headless Chromium: keyboard only, drag and drop, skip, XSS.

Each test checks what was stored in the database, in canonical order, and saves screenshots of
the screen at 1280×800 and at phone width under test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from annotate.models import Assignment, Item, Judgment
from annotate.services.queue import verdict_to_canonical
from tests.browser.conftest import DESKTOP, PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MARKDOWN = (
    "Here is how:\n\n```python\nprint(sorted([3, 1, 2]))\n```\n\n"
    "| step | cost |\n|---|---|\n| sort | n log n |\n\n- short\n- clear\n\n"
    + "\n\n".join(f"Detail {i}: a longer explanation that wraps across lines." for i in range(12))
)


class Screen:
    """One logged-in browser tab, recording any dialog or script error the page produces."""

    def __init__(self, browser: Any, live_server: Any, user: Any, viewport: dict) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.base = live_server.url
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(f"{self.base}/login/")
        self.page.fill("input[name=username]", user.username)
        self.page.fill("input[name=password]", "pw-" + user.username)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, project: Any) -> Any:
        self.page.goto(f"{self.base}/p/{project.slug}/annotate/")
        self.page.wait_for_selector("#work")
        # Survives an htmx swap, not a page load: proves "next" came without a reload.
        self.page.evaluate("window.__samePage = true")
        return self.page

    def assignment_id(self) -> int:
        return int(self.page.get_attribute("#work", "data-assignment"))

    def wait_for_next(self, previous: int) -> None:
        self.page.wait_for_function(
            f"document.querySelector('#work') && document.querySelector('#work').dataset.assignment != '{previous}'"
        )
        assert self.page.evaluate("window.__samePage === true"), "the page reloaded"

    def shot(self, path: Path) -> None:
        self.page.screenshot(path=str(path))

    def close(self) -> None:
        assert not self.errors, self.errors
        self.context.close()


@pytest.fixture
def screens(browser: Any, live_server: Any) -> Iterator[Any]:
    opened: list[Screen] = []

    def open_(user: Any, viewport: dict = DESKTOP) -> Screen:
        screen = Screen(browser, live_server, user, viewport)
        opened.append(screen)
        return screen

    yield open_
    for screen in opened:
        screen.close()


def with_text(project: Any) -> None:
    Item.objects.filter(project=project).update(
        prompt=[
            {"role": "system", "content": "You are concise."},
            {"role": "user", "content": "How do I sort a list in **Python**?"},
        ],
        responses=[{"model": f"m{j}", "text": MARKDOWN} for j in range(project.num_responses)],
    )


def test_a_pairwise_item_is_judged_with_the_keyboard_only(
    screens: Any, make_project: Any, member: Any, set_role: Any, artifacts: Path
) -> None:
    project = make_project(
        "pair", items=3, gold_rate=0.0, aspects=["overall", "truthfulness"], guidelines="# Rules"
    )
    set_role(project, member, "annotator")
    with_text(project)
    screen = screens(member)
    page = screen.open(project)
    first = screen.assignment_id()
    screen.shot(artifacts / "pairwise-1280x800.png")

    page.keyboard.press("?")
    assert page.is_visible("#guidelines h1:text('Rules')")
    page.keyboard.press("Escape")
    page.keyboard.press("1")  # overall: A much better; moves on to truthfulness
    page.keyboard.press("4")  # truthfulness: B slightly better
    page.keyboard.press("9")  # confidence high
    page.keyboard.press("r")
    page.keyboard.type("A cites its source.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    screen.wait_for_next(first)

    a = Assignment.objects.get(pk=first)
    assert a.status == "submitted"
    stored = {j.aspect: j for j in Judgment.objects.filter(assignment=a)}
    order = a.presentation_order
    assert stored["overall"].value == verdict_to_canonical("pairwise", {"strength": 2}, order)
    assert stored["truthfulness"].value == verdict_to_canonical("pairwise", {"strength": -1}, order)
    assert stored["overall"].confidence_label == "high"
    assert stored["overall"].rationale == "A cites its source."
    assert page.inner_text("[data-progress=done]") == "1"

    phone = screens(member, PHONE)
    phone.open(project)
    phone.page.screenshot(path=str(artifacts / "pairwise-phone.png"), full_page=True)


def test_four_responses_are_ranked_by_keyboard_and_by_drag_and_drop(
    screens: Any, make_project: Any, member: Any, set_role: Any, artifacts: Path
) -> None:
    project = make_project(
        "rank", items=2, task_type="ranking", k=4, gold_rate=0.0, aspects=["overall"]
    )
    set_role(project, member, "annotator")
    with_text(project)
    screen = screens(member)
    page = screen.open(project)
    first = screen.assignment_id()
    for key in "cadb":
        page.keyboard.press(key)
    assert page.inner_text(".response[data-position='2'] [data-mark]") == "#1"
    screen.shot(artifacts / "ranking-1280x800.png")
    page.keyboard.press("Enter")
    screen.wait_for_next(first)
    a = Assignment.objects.get(pk=first)
    # Shown positions C A D B got ranks 1 2 3 4.
    shown = {"ranks": [2, 4, 1, 3]}
    assert Judgment.objects.get(assignment=a).value == verdict_to_canonical(
        "ranking", shown, a.presentation_order
    )

    # Second item: rank A B C D by keyboard, then drag D before A.
    second = screen.assignment_id()
    for key in "abcd":
        page.keyboard.press(key)
    page.drag_and_drop(".ranked .chip[data-position='3']", ".ranked .chip[data-position='0']")
    assert page.inner_text(".response[data-position='3'] [data-mark]") == "#1"
    page.keyboard.press("Enter")
    screen.wait_for_next(second)
    b = Assignment.objects.get(pk=second)
    assert Judgment.objects.get(assignment=b).value == verdict_to_canonical(
        "ranking", {"ranks": [2, 3, 4, 1]}, b.presentation_order
    )
    phone = screens(member, PHONE)
    phone.open(project)  # nothing left: the "done" state also has to look right
    phone.page.screenshot(path=str(artifacts / "ranking-done-phone.png"), full_page=True)


def test_best_and_worst_of_four_are_picked_with_the_keyboard(
    screens: Any, make_project: Any, member: Any, set_role: Any, artifacts: Path
) -> None:
    project = make_project("bws", items=2, task_type="kwise", k=4, gold_rate=0.0)
    set_role(project, member, "annotator")
    with_text(project)
    screen = screens(member)
    page = screen.open(project)
    first = screen.assignment_id()
    aspects = project.aspects
    for _ in aspects:
        page.keyboard.press("b")
        page.keyboard.press("Shift+D")
    screen.shot(artifacts / "kwise-1280x800.png")
    page.keyboard.press("Enter")
    screen.wait_for_next(first)
    a = Assignment.objects.get(pk=first)
    expected = verdict_to_canonical("kwise", {"best": 1, "worst": 3}, a.presentation_order)
    values = {j.aspect: j.value for j in Judgment.objects.filter(assignment=a)}
    assert values == dict.fromkeys(aspects, expected)

    phone = screens(member, PHONE)
    phone.open(project)
    phone.page.keyboard.press("a")
    phone.page.screenshot(path=str(artifacts / "kwise-phone.png"), full_page=True)


def test_an_item_is_skipped_with_a_reason(
    screens: Any, make_project: Any, member: Any, set_role: Any, artifacts: Path
) -> None:
    project = make_project("skip", items=2, gold_rate=0.0, aspects=["overall"])
    set_role(project, member, "annotator")
    screen = screens(member)
    page = screen.open(project)
    first = screen.assignment_id()
    page.keyboard.press("s")
    page.wait_for_selector("#skip-dialog[open]")
    page.keyboard.press("2")
    screen.shot(artifacts / "skip-1280x800.png")
    page.keyboard.press("Enter")
    screen.wait_for_next(first)
    a = Assignment.objects.get(pk=first)
    assert (a.status, a.skip_reason) == ("skipped", "expertise")
    assert Judgment.objects.count() == 0


def test_submitting_an_incomplete_judgment_says_what_is_missing(
    screens: Any, make_project: Any, member: Any, set_role: Any
) -> None:
    project = make_project("partial", items=1, gold_rate=0.0, aspects=["overall", "style"])
    set_role(project, member, "annotator")
    screen = screens(member)
    page = screen.open(project)
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    assert "style" in page.inner_text("#problem")
    assert Judgment.objects.count() == 0


def test_a_reload_keeps_the_choices_made_so_far(
    screens: Any, make_project: Any, member: Any, set_role: Any
) -> None:
    project = make_project("draft", items=1, gold_rate=0.0, aspects=["overall", "style"])
    set_role(project, member, "annotator")
    screen = screens(member)
    page = screen.open(project)
    page.keyboard.press("5")
    page.reload()
    page.wait_for_selector("#work")
    assert page.is_checked("input[name='aspect-0'][value='-2']")


def test_html_and_scripts_in_responses_never_run(
    screens: Any, make_project: Any, member: Any, set_role: Any, artifacts: Path
) -> None:
    project = make_project("xss", items=1, gold_rate=0.0, aspects=["overall"])
    set_role(project, member, "annotator")
    evil = (
        "<script>window.__xss = 1; alert('script')</script>\n\n"
        "<img src=x onerror=\"window.__xss = 2; alert('img')\">\n\n"
        "[click me](javascript:window.__xss=3;alert('link'))\n\n"
        "<a href=\"javascript:alert('raw')\">raw link</a>"
    )
    Item.objects.filter(project=project).update(
        prompt=evil, responses=[{"model": "a", "text": evil}, {"model": "b", "text": evil}]
    )
    screen = screens(member)
    page = screen.open(project)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert page.locator(".response img, .prompt img, .response script").count() == 0
    assert page.locator(".response a[href^='javascript'], .prompt a").count() == 0
    assert "<script>" in page.inner_text(".response[data-position='0'] .md")
    screen.shot(artifacts / "xss-1280x800.png")
    assert screen.dialogs == []
