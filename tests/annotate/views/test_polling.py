"""The polled partial helper: 286 (stop polling) only for an HTMX request once the job is done."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django_htmx.middleware import HtmxDetails

from annotate.views.polling import polled_partial

TEMPLATE = "annotate/quality.html#label_run"


def request(*, htmx: bool) -> object:
    made = RequestFactory().get("/", **({"HTTP_HX_REQUEST": "true"} if htmx else {}))
    made.htmx = HtmxDetails(made)
    return made


@pytest.mark.parametrize(
    ("htmx", "finished", "status"),
    [(True, True, 286), (True, False, 200), (False, True, 200), (False, False, 200)],
)
def test_only_a_finished_job_polled_by_htmx_stops_the_polling(
    htmx: bool, finished: bool, status: int
) -> None:
    response = polled_partial(
        request(htmx=htmx), TEMPLATE, {"project": None, "label_run": None}, finished=finished
    )
    assert response.status_code == status


@pytest.mark.parametrize(("finished", "reloads"), [(True, True), (False, False)])
def test_a_finished_job_that_made_the_page_s_content_reloads_the_page(
    finished: bool, reloads: bool
) -> None:
    response = polled_partial(
        request(htmx=True),
        TEMPLATE,
        {"project": None, "label_run": None},
        finished=finished,
        reload_page=True,
    )
    assert (response.get("HX-Refresh") == "true") is reloads
