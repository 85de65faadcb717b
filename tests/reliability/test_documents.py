"""Bounded JSON and YAML reading, and the DRF parser built on it, without any app around."""

from __future__ import annotations

import io

import pytest

from reliability.documents import Bounds, DocumentRefused, load_json, load_json_or_yaml
from reliability.exceptions import MalformedRequestError, ValidationError
from reliability.parsers import BoundedJSONParser

SMALL = Bounds(max_depth=4, max_values=10, max_bytes=64)


def refusal(text: str, bounds: Bounds = SMALL) -> tuple[str, str | None, str]:
    with pytest.raises(DocumentRefused) as caught:
        load_json_or_yaml(text, bounds)
    return caught.value.code, caught.value.field("doc"), caught.value.reason


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": [1, 2.5, "x", null, true]}', {"a": [1, 2.5, "x", None, True]}),
        ("a:\n  - 1\n  - x\n", {"a": [1, "x"]}),
        ('{"brackets": "[[[[[[[[ ,,,,,, {{{{{{"}', {"brackets": "[[[[[[[[ ,,,,,, {{{{{{"}),
        ('{"emoji": "\\ud83d\\ude00"}', {"emoji": "\U0001f600"}),
        ("x: !!str 2024-01-01\n", {"x": "2024-01-01"}),
    ],
    ids=["json", "yaml", "structure-inside-strings", "surrogate-pair", "explicit-str"],
)
def test_json_values_within_bounds_are_read(text, value):
    assert load_json_or_yaml(text, SMALL) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[[[[1]]]]]", ("max_depth", "doc", "Nested deeper than 4 levels.")),
        ("- - - - - x\n", ("max_depth", "doc.0.0.0.0", "Nested deeper than 4 levels.")),
        ("[" + ",".join("1" * 11) + "]", ("max_values", "doc", "More than 10 values.")),
        ("x: " + "y" * 80 + "\n", ("max_bytes", "doc.x", "Larger than 64 bytes once decoded.")),
        ("a: &x 1\nb: *x\n", ("yaml_alias", "doc.a", "YAML anchors and aliases are not accepted.")),
        ("a: 1\n---\nb: 2\n", ("multiple_documents", "doc", "Expected one YAML document.")),
        ("? [k]\n: v\n", ("key_type", "doc", "Keys must be strings, not collections.")),
        ("x: !custom 1\n", ("not_json", "doc.x", "Tagged '!custom' is not a JSON value.")),
        ("x: [1\n", ("unparsable", "doc", "Not valid JSON or YAML (line 2, column 1).")),
    ],
    ids=[
        "json-depth",
        "yaml-depth",
        "values",
        "size",
        "alias",
        "documents",
        "key",
        "tag",
        "syntax",
    ],
)
def test_what_json_cannot_hold_or_bounds_forbid_is_refused_with_its_place(text, expected):
    assert refusal(text) == expected


def test_bytes_that_are_not_utf8_are_unparsable():
    with pytest.raises(DocumentRefused) as caught:
        load_json(b'{"a": "\xff"}', SMALL)
    assert (caught.value.code, caught.value.reason) == ("unparsable", "Not UTF-8 text (byte 7).")


def test_a_long_path_keeps_its_ends():
    refused = DocumentRefused("x", "y", tuple(range(20)))
    assert refused.field("doc") == "doc.0.1.2.3.4.….15.16.17.18.19"


class View:
    json_bounds = SMALL


@pytest.mark.parametrize(
    ("body", "error", "message", "errors"),
    [
        (
            b"[[[[[1]]]]]",
            ValidationError,
            "The request body was refused: Nested deeper than 4 levels.",
            [{"field": None, "code": "max_depth", "message": "Nested deeper than 4 levels."}],
        ),
        (
            b'{"a": }',
            MalformedRequestError,
            "The request body is not readable: Not valid JSON (line 1, column 7).",
            None,
        ),
    ],
)
def test_the_parser_answers_400s_and_keeps_no_frame_of_the_input(body, error, message, errors):
    with pytest.raises(error) as caught:
        BoundedJSONParser().parse(io.BytesIO(body), "application/json", {"view": View()})
    assert caught.value.message == message
    if errors is not None:
        assert caught.value.errors == errors
    assert caught.value.__context__.__traceback__ is None


def test_the_parser_reads_what_the_bounds_allow():
    parsed = BoundedJSONParser().parse(io.BytesIO(b'{"a": [1]}'), "application/json", {})
    assert parsed == {"a": [1]}
