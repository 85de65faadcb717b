"""The VEX as a CycloneDX 1.6 JSON BOM with embedded VEX, the form Dependency-Track reads.

Built from the stored OpenVEX document, so the two formats cannot disagree:
the image is the metadata component, each package a component whose bom-ref
is its unqualified purl, and each statement one vulnerability whose
``affects`` names that component. Dependency-Track applies an entry to the
project's component with the same purl coordinates, or the same
name and version; it skips entries without a known ``source``, so every
vulnerability carries one. Every BOM is checked with cyclonedx-python-lib's
strict JSON validator before it leaves the service: its schema, references
and format checks, except that ``uniqueItems`` on the BOM's lists of objects,
which jsonschema checks pairwise (minutes at ten thousand vulnerabilities), is
checked in linear time on canonical JSON, as for OpenVEX (``schema``).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import quote
from uuid import UUID

from cyclonedx.model import HashAlgorithm, HashType, XsUri
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.impact_analysis import ImpactAnalysisJustification, ImpactAnalysisState
from cyclonedx.model.vulnerability import (
    BomTarget,
    Vulnerability,
    VulnerabilityAnalysis,
    VulnerabilityReference,
    VulnerabilitySource,
)
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from packageurl import PackageURL

from analysis.vex.schema import first_duplicate, first_error
from reliability.exceptions import InternalServiceError

MEDIA_TYPE = "application/vnd.cyclonedx+json"
SPEC_VERSION = "1.6"
STATES = {
    "not_affected": ImpactAnalysisState.NOT_AFFECTED,
    "affected": ImpactAnalysisState.EXPLOITABLE,
    "under_investigation": ImpactAnalysisState.IN_TRIAGE,
    "fixed": ImpactAnalysisState.RESOLVED,
}
JUSTIFICATIONS = {
    "vulnerable_code_not_in_execute_path": ImpactAnalysisJustification.CODE_NOT_REACHABLE,
    "vulnerable_code_not_present": ImpactAnalysisJustification.CODE_NOT_PRESENT,
    "component_not_present": ImpactAnalysisJustification.CODE_NOT_PRESENT,
    "inline_mitigations_already_exist": ImpactAnalysisJustification.PROTECTED_AT_RUNTIME,
}
# (id prefix, Dependency-Track source name, advisory page)
SOURCES = (
    ("CVE-", "NVD", "https://nvd.nist.gov/vuln/detail/{}"),
    ("GHSA-", "GITHUB", "https://github.com/advisories/{}"),
    ("", "OSV", "https://osv.dev/vulnerability/{}"),
)
GROUPED_TYPES = frozenset({"maven", "npm"})  # purl namespaces that are a component's group
UNIQUE_LISTS = ("components", "dependencies", "vulnerabilities")


class InvalidCycloneDxDocument(InternalServiceError):
    """We built a BOM the CycloneDX schema rejects: a bug, never the client's fault.

    The client is told no more than that; the schema's complaint, which may quote what an
    import supplied, goes to the log with the traceback.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(
            "vex-builder", "The CycloneDX form of this VEX document could not be built."
        )
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.message} {self.problem}"


def cyclonedx_vex(document: dict[str, Any], serial_number: UUID) -> dict[str, Any]:
    """The CycloneDX BOM of an OpenVEX document, validated."""
    statements = document.get("statements") or []
    components: dict[str, Component] = {}
    vulnerabilities = []
    for statement in statements:
        product = statement["products"][0]
        purl = product["subcomponents"][0]["@id"]
        if purl not in components:
            components[purl] = _package(purl)
        vulnerabilities.append(_vulnerability(statement, purl))
    image = _image(statements[0]["products"][0]) if statements else None
    metadata = BomMetaData(component=image, timestamp=datetime.fromisoformat(document["timestamp"]))
    bom = Bom(
        components=components.values(),
        vulnerabilities=vulnerabilities,
        serial_number=serial_number,
        metadata=metadata,
    )
    if image is not None:
        bom.register_dependency(image, components.values())
    serialized = json.loads(JsonV1Dot6(bom).output_as_string())
    validate_bom(serialized)
    return serialized


def validate_bom(bom: dict[str, Any]) -> None:
    """Raise ``InvalidCycloneDxDocument`` naming the first place the BOM breaks the schema."""
    error = first_error(_validator(), bom)
    if error is not None:
        place, message, count = error
        raise InvalidCycloneDxDocument(
            f"Generated CycloneDX BOM is invalid at {place}: {message} ({count} error(s))"
        )
    for name in UNIQUE_LISTS:
        duplicate = first_duplicate(bom.get(name) or [])
        if duplicate is not None:
            raise InvalidCycloneDxDocument(
                f"Generated CycloneDX BOM is invalid at {name}/{duplicate}: items must be unique"
            )


@cache
def _validator() -> Any:
    """cyclonedx-python-lib's strict 1.6 validator, with the pairwise keyword taken out."""
    # Imported when first needed: it imports jsonschema (see analysis.vex.schema.validator).
    from cyclonedx.validation.json import JsonStrictValidator

    stock = JsonStrictValidator(SchemaVersion.V1_6)._validator
    relaxed = copy.deepcopy(stock.schema)
    for name in UNIQUE_LISTS:
        del relaxed["properties"][name]["uniqueItems"]
    return stock.evolve(schema=relaxed)


def _image(product: dict[str, Any]) -> Component:
    """Documents made before products carried identifiers and hashes have the full purl as @id."""
    purl = PackageURL.from_string((product.get("identifiers") or {}).get("purl", product["@id"]))
    digest = purl.version.removeprefix("sha256:")
    return Component(
        type=ComponentType.CONTAINER,
        name=purl.name,
        version=f"sha256:{digest}",
        purl=purl,
        bom_ref=product["@id"],
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest)],
    )


def _package(purl_text: str) -> Component:
    try:
        purl = PackageURL.from_string(purl_text)
    except ValueError:  # the scanner's own identifier, kept as it was
        return Component(type=ComponentType.LIBRARY, name=purl_text, bom_ref=purl_text)
    grouped = purl.type in GROUPED_TYPES
    return Component(
        type=ComponentType.LIBRARY,
        name=purl.name,
        version=purl.version,
        group=purl.namespace if grouped else None,
        purl=purl,
        bom_ref=purl_text,
    )


def _vulnerability(statement: dict[str, Any], component_ref: str) -> Vulnerability:
    described = statement["vulnerability"]
    name = described["name"]
    analysis = VulnerabilityAnalysis(
        state=STATES[statement["status"]],
        justification=JUSTIFICATIONS.get(statement.get("justification", "")),
        detail=statement.get("status_notes") or statement.get("impact_statement"),
    )
    return Vulnerability(
        bom_ref=f"{name}|{component_ref}",
        id=name,
        source=_source(name),
        references=[
            VulnerabilityReference(id=alias, source=_source(alias))
            for alias in described.get("aliases", [])
        ],
        recommendation=statement.get("action_statement"),
        analysis=analysis,
        affects=[BomTarget(ref=component_ref)],
    )


def _source(vulnerability_id: str) -> VulnerabilitySource:
    for prefix, name, page in SOURCES:
        if vulnerability_id.startswith(prefix):
            url = page.format(quote(vulnerability_id, safe=""))
            return VulnerabilitySource(name=name, url=XsUri(url))
    raise AssertionError("the last source has an empty prefix")  # pragma: no cover
