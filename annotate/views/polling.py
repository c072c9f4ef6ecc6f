"""Partials that HTMX polls while a worker job runs (imports, judge runs, exports, reports …)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import HttpResponseStopPolling


def polled_partial(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    finished: bool,
    reload_page: bool = False,
) -> HttpResponse:
    """The partial as usual; once what it follows has finished, an HTMX request gets it with
    status 286, which renders the final state and stops the polling in the same response.

    `reload_page` (with `finished`): the job produced what the page around the partial shows (a
    report), so HTMX reloads the page instead of leaving a "reload to see it" behind. The
    reloaded page finds the job finished and polls no more, so this cannot loop.
    """
    response = render(request, template, context)
    if request.htmx and finished:
        response = HttpResponseStopPolling(response.content)
        if reload_page:
            response["HX-Refresh"] = "true"
    return response
