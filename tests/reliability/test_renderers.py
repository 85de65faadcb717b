"""The orjson renderer sends what DRF's JSONRenderer sends, byte for byte where floats allow."""

from __future__ import annotations

import datetime
import json
import uuid
from collections import OrderedDict
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from reliability.renderers import OrjsonRenderer

UTC = datetime.UTC
SAME_BYTES = {
    "nested": {"a": [1, {"b": None, "c": True, "d": False}], "e": {}, "f": []},
    "text": ["é 漢字 🦀", 'quote " backslash \\ slash /', "\x00\x1f\t\n\r\x08\x0c\x7f"],
    "line separators": ["a\u2028b", "c\u2029d"],
    "aware datetime": datetime.datetime(2026, 11, 30, 23, 59, 1, 123456, tzinfo=UTC),
    "whole second": datetime.datetime(2026, 11, 30, 23, 59, 1, tzinfo=UTC),
    "other zone": datetime.datetime(
        2026, 1, 2, 3, 4, 5, 600, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))
    ),
    "naive datetime": datetime.datetime(2026, 11, 30, 1, 2, 3, 4000),
    "date": datetime.date(2026, 2, 28),
    "time": datetime.time(13, 14, 15, 161718),
    "timedelta": datetime.timedelta(days=1, seconds=2, microseconds=3),
    "decimal": Decimal("12.50"),
    "uuid": uuid.UUID("11111111-2222-4333-8444-555555555555"),
    "lazy string": gettext_lazy("This field is required."),
    "error detail": [ErrorDetail("Not a cursor.", code="invalid")],
    "serializer output": ReturnDict({"a": ReturnList([1, 2], serializer=None)}, serializer=None),
    "ordered dict": OrderedDict([("z", 1), ("a", 2)]),
    "tuple": (1, "two"),
    "set": {"only"},
    "bytes": b"raw",
    "integer keys": {1: "one", 2: "two"},
    "64-bit integers": [2**63 - 1, -(2**63)],
    "integer beyond 64 bits": 2**64 + 1,
    "deeper than orjson goes": json.loads("[" * 300 + "]" * 300),
}


@pytest.mark.parametrize("value", SAME_BYTES.values(), ids=SAME_BYTES.keys())
def test_the_same_bytes_as_drf(value):
    assert OrjsonRenderer().render(value) == JSONRenderer().render(value)


@pytest.mark.parametrize("accept", ["application/json; indent=4", "application/json; indent=0"])
def test_an_indented_response_is_drfs(accept):
    value = {"a": [1, 2], "b": {"c": "d"}}
    assert OrjsonRenderer().render(value, accept) == JSONRenderer().render(value, accept)


def test_what_orjson_consumed_reaches_drf_when_drf_takes_over():
    def values():
        yield from (1, 2)

    body = {"generated": values(), "beyond 64 bits": 2**70, "when": SAME_BYTES["date"]}

    expected = JSONRenderer().render({**body, "generated": values()})
    assert OrjsonRenderer().render(body) == expected


def test_keys_drf_refuses_are_refused():
    with pytest.raises(TypeError):
        OrjsonRenderer().render({uuid.uuid4(): 1})


class AsciiRenderer(OrjsonRenderer):
    ensure_ascii = True


class SpacedRenderer(OrjsonRenderer):
    compact = False


@pytest.mark.parametrize("renderer", [AsciiRenderer, SpacedRenderer])
def test_a_renderer_set_otherwise_renders_as_drf_would(renderer):
    value = {"text": "é 漢字", "list": [1, 2]}

    class Drf(JSONRenderer):
        ensure_ascii = renderer.ensure_ascii
        compact = renderer.compact

    assert renderer().render(value) == Drf().render(value)


def test_nothing_renders_as_an_empty_body():
    assert OrjsonRenderer().render(None) == b""


def test_a_value_neither_can_encode_fails_as_in_drf():
    with pytest.raises(TypeError):
        OrjsonRenderer().render({"x": object()})


def test_not_a_number_is_null_where_drf_fails():
    assert OrjsonRenderer().render([float("nan"), float("inf")]) == b"[null,null]"
    with pytest.raises(ValueError, match="not JSON compliant"):
        JSONRenderer().render([float("nan")])


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_any_json_value_reads_back_the_same(value):
    body = {"value": value}  # a bare None is an empty body, in both
    ours, drfs = OrjsonRenderer().render(body), JSONRenderer().render(body)
    assert json.loads(ours) == json.loads(drfs) == body
