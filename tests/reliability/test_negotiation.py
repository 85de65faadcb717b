"""The negotiation's shortcut picks what DRF's full negotiation picks, and defers otherwise."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer, StaticHTMLRenderer
from rest_framework.request import Request

from reliability.exceptions import ValidationError
from reliability.negotiation import ProblemJsonAwareNegotiation

RENDERER_LISTS = [
    [JSONRenderer(), BrowsableAPIRenderer()],
    [StaticHTMLRenderer(), JSONRenderer()],
]
ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "text/html",
    "application/json; indent=4",
    "text/html;q=0.9, application/json",
]


def request(accept: str | None, query: str = "") -> Request:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    return Request(RequestFactory().get(f"/x{query}", **headers))


@pytest.mark.parametrize("renderers", RENDERER_LISTS, ids=["json-first", "html-first"])
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=api"])
def test_the_choice_is_drfs(renderers, accept, query):
    ours, drfs = ProblemJsonAwareNegotiation(), DefaultContentNegotiation()
    if query == "?format=api" and not any(r.format == "api" for r in renderers):
        return  # DRF's 404: see test_an_unknown_format_is_a_400_naming_the_parameter
    try:
        expected = drfs.select_renderer(request(accept, query), renderers)
    except Exception as refused:  # whatever DRF raises, ours raises too
        with pytest.raises(type(refused)):
            ours.select_renderer(request(accept, query), renderers)
        return
    renderer, media_type = ours.select_renderer(request(accept, query), renderers)
    assert (type(renderer), media_type) == (type(expected[0]), expected[1])


@pytest.mark.parametrize("accept", [None, "application/json", "application/problem+json"])
def test_an_unknown_format_is_a_400_naming_the_parameter(accept):
    """DRF answers ``?format=xml`` with Http404, which reads as "no such resource"."""
    renderers = [JSONRenderer(), BrowsableAPIRenderer()]

    with pytest.raises(ValidationError) as excinfo:
        ProblemJsonAwareNegotiation().select_renderer(request(accept, "?format=xml"), renderers)

    assert excinfo.value.message == "Unknown format 'xml': choose json, api."
    assert excinfo.value.errors == [
        {"field": "format", "code": "invalid_choice", "message": "Must be one of: json, api."}
    ]


def test_a_format_suffix_wins_over_the_query_as_in_drf():
    renderers = [JSONRenderer(), BrowsableAPIRenderer()]

    renderer, _ = ProblemJsonAwareNegotiation().select_renderer(
        request(None, "?format=xml"), renderers, format_suffix="json"
    )

    assert isinstance(renderer, JSONRenderer)
