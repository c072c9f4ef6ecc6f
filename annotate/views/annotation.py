"""The annotation screen: thin views that adapt HTTP to `annotate.services.queue`.

The form is the single source of truth: radio buttons (pairwise, best–worst) and rank selects
(ranking) work with no JavaScript at all; `static/js/annotate.js` adds keyboard shortcuts, drag
and drop, and a draft kept in sessionStorage. With htmx, a submit or a skip answers with the next
item's `#work` partial, so the page never reloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import nh3
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST
from markdown_it import MarkdownIt

from annotate import verdicts as shapes
from annotate.access import ANNOTATE, project_for
from annotate.models import Assignment, Judgment, Project
from annotate.services.queue import (
    CONFIDENCE_LABELS,
    SKIP_REASONS,
    InvalidVerdict,
    QueueError,
    assignment_next,
    assignment_of,
    assignment_renew,
    assignment_skip,
    judgment_submit,
    queue_progress,
    verdict_to_presented,
)

LETTERS = "ABCDEFGHIJKLMNOP"  # K ≤ 16 (Project.num_responses); never reaches the "s" of skip.
TEMPLATE = "annotate/annotate.html"


# --- Views ------------------------------------------------------------------------------------


@login_required
def annotate(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=ANNOTATE)
    assignment = assignment_next(project=project, annotator=request.user)
    return _render_work(request, project, assignment)


@require_POST
@login_required
def annotate_submit(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=ANNOTATE)
    assignment = _get_assignment_for_user(project, request.user, assignment_id)
    try:
        judgment_submit(
            assignment=assignment,
            annotator=request.user,
            verdicts=_verdicts_from_form(project, request.POST),
            rationale=request.POST.get("rationale", ""),
            confidence_label=request.POST.get("confidence", ""),
        )
    except QueueError as exc:
        return _render_refusal(request, project, assignment, exc)
    return _next(request, project)


@require_POST
@login_required
def annotate_skip(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    project, _ = project_for(request.user, slug, need=ANNOTATE)
    assignment = _get_assignment_for_user(project, request.user, assignment_id)
    reason = request.POST.get("reason", "")
    if reason == "other":
        reason = request.POST.get("reason_text", "").strip() or "other"
    try:
        assignment_skip(assignment=assignment, annotator=request.user, reason=reason)
    except QueueError as exc:
        return _render_refusal(request, project, assignment, exc)
    return _next(request, project)


@require_POST
@login_required
def annotate_renew(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    """Extend the hold while the annotator is still working (the screen calls this on activity)."""
    project, _ = project_for(request.user, slug, need=ANNOTATE)
    assignment = _get_assignment_for_user(project, request.user, assignment_id)
    try:
        assignment_renew(assignment=assignment, annotator=request.user)
    except QueueError as exc:
        return HttpResponse(str(exc), status=exc.status, content_type="text/plain")
    return HttpResponse(status=204)


# --- Helpers ----------------------------------------------------------------------------------


def _get_assignment_for_user(project: Project, user: Any, assignment_id: int) -> Assignment:
    """The user's own assignment in this project; anyone else's is a 404, so ids do not leak."""
    # Not the item: its texts are not needed to record a verdict.
    assignment = assignment_of(project=project, annotator=user, assignment_id=assignment_id)
    if assignment is None:
        raise Http404("No such assignment for you.")
    return assignment


def _next(request: HttpRequest, project: Project) -> HttpResponse:
    if not request.htmx:
        # Post/redirect/get: a reload of the page never resubmits.
        return redirect("annotate", project.slug)
    return _render_work(request, project, assignment_next(project=project, annotator=request.user))


def _render_work(
    request: HttpRequest,
    project: Project,
    assignment: Assignment | None,
    *,
    problem: str = "",
    status: int = 200,
) -> HttpResponse:
    context = _work_context(project, assignment, request.user)
    context["problem"] = problem
    template = f"{TEMPLATE}#work" if request.htmx else TEMPLATE
    return render(request, template, context, status=status)


def _render_refusal(
    request: HttpRequest, project: Project, assignment: Assignment, exc: QueueError
) -> HttpResponse:
    """A 4xx that says what is wrong. Bad input keeps the annotator's choices on screen (htmx
    swaps only the message); a closed assignment offers the next item."""
    closed = exc.status == 409
    if request.htmx:
        response = render(
            request,
            f"{TEMPLATE}#problem",
            {"project": project, "problem": str(exc), "closed": closed},
            status=exc.status,
        )
        response["HX-Retarget"] = "#problem"
        response["HX-Reswap"] = "outerHTML"
        return response
    shown = None if closed else assignment
    return _render_work(request, project, shown, problem=str(exc), status=exc.status)


def _verdicts_from_form(project: Project, data: QueryDict) -> dict[str, dict]:
    """Read one verdict per aspect from the form, in presentation order (the service maps back)."""
    found: dict[str, dict] = {}
    k = project.num_responses
    for index, aspect in enumerate(project.aspects):
        name = f"aspect-{index}"
        if project.task_type == shapes.PAIRWISE:
            found[aspect] = {"strength": _form_int(data, name, aspect)}
        elif project.task_type == shapes.RANKING:
            ranks = [_form_int(data, f"{name}-rank-{p}", f"{aspect} rank") for p in range(k)]
            found[aspect] = {"ranks": ranks}
        else:
            found[aspect] = {
                "best": _form_int(data, f"{name}-best", f"{aspect} best"),
                "worst": _form_int(data, f"{name}-worst", f"{aspect} worst"),
            }
    return found


def _form_int(data: QueryDict, name: str, label: str) -> int:
    raw = data.get(name, "").strip()
    if not raw:
        raise InvalidVerdict(f"{label}: make a choice")
    try:
        return int(raw)
    except ValueError:
        raise InvalidVerdict(f"{label}: {raw[:40]!r} is not one of the choices") from None


# --- What the screen shows --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shown:
    position: int
    letter: str
    html: SafeString


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    html: SafeString


@dataclass(frozen=True, slots=True)
class AspectRow:
    index: int
    name: str
    field: str
    suggestions: list[str]


def _work_context(project: Project, assignment: Assignment | None, user: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "project": project,
        "assignment": assignment,
        "progress": queue_progress(project=project, annotator=user),
        "guidelines_html": markdown_html(project.guidelines),
        "skip_reasons": SKIP_REASONS,
        "confidence_labels": CONFIDENCE_LABELS,
    }
    if assignment is None:
        return context
    item = assignment.item
    order = assignment.presentation_order
    k = len(order)
    suggestions = _ai_suggestions(project, assignment) if project.show_ai_suggestions else {}
    context.update(
        item=item,
        k=k,
        letters=LETTERS[:k],
        rank_choices=range(1, k + 1),
        prompt_turns=_prompt_turns(item.prompt),
        shown=[
            Shown(p, LETTERS[p], markdown_html(_text(item.responses[c])))
            for p, c in enumerate(order)
        ],
        aspects=[
            AspectRow(i, a, f"aspect-{i}", suggestions.get(a, []))
            for i, a in enumerate(project.aspects)
        ],
        scale=[
            (strength, label, n + 1)
            for n, (strength, label) in enumerate(
                zip(shapes.PAIRWISE_STRENGTHS, project.scale_labels, strict=False)
            )
            if strength != 0 or project.allow_ties
        ],
    )
    return context


def _text(response: Any) -> str:
    return str(response.get("text", "")) if isinstance(response, dict) else str(response)


def _prompt_turns(prompt: Any) -> list[Turn]:
    if isinstance(prompt, list):
        return [
            Turn(str(t.get("role", "user")), markdown_html(str(t.get("content", ""))))
            for t in prompt
            if isinstance(t, dict)
        ]
    return [Turn("", markdown_html(str(prompt)))]


def _ai_suggestions(project: Project, assignment: Assignment) -> dict[str, list[str]]:
    """The AI panel's verdicts, described in this screen's letters."""
    found: dict[str, list[str]] = {}
    rows = Judgment.objects.filter(
        item_id=assignment.item_id, kind=Judgment.Kind.AI, task_type=project.task_type
    ).select_related("judge")
    for judgment in rows:
        try:
            shown = verdict_to_presented(
                project.task_type, judgment.value, assignment.presentation_order
            )
        except (KeyError, IndexError, ValueError, TypeError):
            continue  # a malformed stored verdict is not worth breaking the screen for
        who = judgment.judge.name if judgment.judge else judgment.source
        found.setdefault(judgment.aspect, []).append(
            f"{who}: {_describe(project, shown)}"
            + (f" ({judgment.confidence:.0%} sure)" if judgment.confidence is not None else "")
        )
    return found


def _describe(project: Project, shown: dict) -> str:
    if project.task_type == shapes.PAIRWISE:
        index = shapes.PAIRWISE_STRENGTHS.index(shown["strength"])
        return str(project.scale_labels[index])
    if project.task_type == shapes.RANKING:
        by_rank = sorted(range(len(shown["ranks"])), key=lambda p: shown["ranks"][p])
        return " > ".join(LETTERS[p] for p in by_rank)
    return f"best {LETTERS[shown['best']]}, worst {LETTERS[shown['worst']]}"


# --- Markdown, sanitised ------------------------------------------------------------------------

# Raw HTML in Markdown is off, so `<script>` in an LLM response is shown as text; nh3 then
# removes anything the renderer let through that is not on this list (no images: a response
# must not fetch URLs in the annotator's browser; only http(s)/mailto links).
_ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "kbd", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "th": {"style"}, "td": {"style"}}


@cache
def _markdown() -> MarkdownIt:
    # breaks: a single newline is a line break. LLMs write poems, addresses and step lists with
    # single newlines; CommonMark would run those lines together.
    return MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(
        ["table", "strikethrough"]
    )


def markdown_html(text: str) -> SafeString:
    if not text:
        return mark_safe("")
    html = nh3.clean(
        _markdown().render(text),
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )
    return mark_safe(html)
