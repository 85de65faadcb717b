"""Validating generated documents: the official schema; uniqueness checked in linear time."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from analysis.vex.schema import InvalidVexDocument, official_schema, validate_document

VALID = json.loads((Path(__file__).parent / "fixtures" / "go-vex_testdata_v0.2.0.json").read_text())


def test_the_reference_document_is_valid_under_both():
    Draft202012Validator(official_schema()).validate(VALID)
    validate_document(VALID)


@pytest.mark.parametrize(
    ("mutate", "place"),
    [
        (lambda d: d.update(version=0), "version"),
        (lambda d: d.update(statements=[]), "statements"),
        (lambda d: d["statements"][0].update(status="maybe"), "statements/0/status"),
        (lambda d: d["statements"][0]["vulnerability"].pop("name"), "statements/0/vulnerability"),
        (lambda d: d.update(supplier="x"), "(document)"),
        (
            lambda d: d["statements"].append(copy.deepcopy(d["statements"][0])),
            f"statements/{len(VALID['statements'])}",
        ),
    ],
)
def test_invalid_documents_are_refused_naming_the_place(mutate, place):
    document = copy.deepcopy(VALID)
    mutate(document)
    assert not Draft202012Validator(official_schema()).is_valid(document)
    with pytest.raises(InvalidVexDocument) as raised:
        validate_document(document)
    assert f"invalid at {place}:" in raised.value.message
    assert raised.value.status_code == 500
