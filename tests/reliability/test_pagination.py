"""Keyset cursor pagination in a bare project: a mixed-direction ordering with long ties."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import RequestFactory
from rest_framework.request import Request

from reliability.exceptions import ValidationError
from reliability.pagination import KeysetCursorPagination

pytestmark = pytest.mark.django_db


class ByLabelThenNewest(KeysetCursorPagination):
    ordering = ("app_label", "-id")  # seven rows share each app_label
    page_size = 4
    max_page_size = 10


@pytest.fixture
def rows() -> list[int]:
    ContentType.objects.bulk_create(
        ContentType(app_label=f"tied{label}", model=f"model{n}")
        for label in range(3)
        for n in range(7)
    )
    ordered = ContentType.objects.filter(app_label__startswith="tied").order_by("app_label", "-id")
    return list(ordered.values_list("id", flat=True))


def page(url: str) -> tuple[list[int], str | None, str | None]:
    parts = urlsplit(url)
    request = Request(RequestFactory().get(f"{parts.path}?{parts.query}"))
    paginator = ByLabelThenNewest()
    queryset = ContentType.objects.filter(app_label__startswith="tied")
    found = paginator.paginate_queryset(queryset.values("id", "app_label"), request)
    ids = [row["id"] for row in found]
    return ids, paginator.get_next_link(), paginator.get_previous_link()


def walk(url: str, direction: int) -> list[list[int]]:
    pages = []
    while url:
        ids, following, previous = page(url)
        pages.append(ids)
        url = (following, previous)[direction]
    return pages


def test_next_then_previous_visit_every_row_once_in_order(rows):
    forward = walk("/items", 0)
    assert [row for ids in forward for row in ids] == rows
    assert [len(ids) for ids in forward] == [4, 4, 4, 4, 4, 1]

    last = "/items"
    while (following := page(last)[1]) is not None:
        last = following
    assert walk(last, 1) == forward[::-1]


@pytest.mark.parametrize(
    "query",
    ["cursor=cD10aWVkMQ%3D%3D", "cursor=cD10aWVkMSZwPXg%3D", "cursor=%25%25", "page_size=11"],
    ids=["short-position", "id-not-an-integer", "not-base64", "page-size-over-max"],
)
def test_a_bad_cursor_or_page_size_is_a_validation_error_naming_it(rows, query):
    with pytest.raises(ValidationError) as raised:
        page(f"/items?{query}")
    (error,) = raised.value.details["errors"]
    assert error["field"] == query.partition("=")[0]
    assert error["code"] == "invalid"
