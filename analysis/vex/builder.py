"""Reachability results and an OpenVEX v0.2.0 document from Kubescape's manifests.

One statement per (vulnerability, package) of the full manifest. A pair that
is also in the relevant (runtime-filtered) manifest was loaded during the
observed run: ``affected``, with an action. Any other pair was not:
``not_affected`` / ``vulnerable_code_not_in_execute_path``. Results, summary
and document come from the same pass, so they cannot disagree.

Each statement names the image once per known digest (``products``) and the
package in every purl form a scanner computes (``purls``), so that Trivy and
Grype apply it; ``status_notes`` says why (``notes``). Within a vulnerability,
affected statements come first: ``vexctl filter`` decides a CVE by its first
statement, and must keep a finding that is affected in any package.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from analysis.image_reference import unique_digests
from analysis.kubescape.readers import SEVERITIES, Manifest, Match
from analysis.vex.notes import Observation, loaded, not_loaded
from analysis.vex.products import image_products
from analysis.vex.purls import subcomponent_purls
from analysis.vex.schema import validate_document
from reliability.exceptions import utc_timestamp

CONTEXT = "https://openvex.dev/ns/v0.2.0"
AFFECTED, NOT_AFFECTED = "affected", "not_affected"
UNDER_INVESTIGATION, UNKNOWN_STATUS = "under_investigation", "unknown"
VEX_STATUSES = (NOT_AFFECTED, AFFECTED, "fixed", UNDER_INVESTIGATION)
NOT_IN_EXECUTE_PATH = "vulnerable_code_not_in_execute_path"
STRONG_JUSTIFICATIONS = frozenset({"component_not_present", "vulnerable_code_not_present"})
COMPLETE, PARTIAL = "complete", "partial"


@dataclass(frozen=True)
class DocumentInfo:
    """Document-level values; ``timestamp`` is injectable for reproducible output.

    ``other_digests``: the image's digests besides the submitted one (the pod's
    ``imageID``, Kubescape's); ``observed_seconds``: how long the workload ran
    under observation, None when not known (imported results).
    """

    image_ref: str
    image_digest: str
    author: str
    tooling: str
    id_base: str
    timestamp: datetime
    # The document's @id ends with it; the service stores and serves the document under it.
    document_id: UUID
    role: str = "Runtime reachability analysis"
    other_digests: tuple[str, ...] = ()
    observed_seconds: int | None = None

    @property
    def digests(self) -> tuple[str, ...]:
        return unique_digests(self.image_digest, *self.other_digests)


@dataclass
class BuildResult:
    document: dict[str, Any] | None
    results: list[dict[str, Any]]
    summary: dict[str, Any]
    statement_counts: dict[str, int] = field(default_factory=dict)
    image_digests: tuple[str, ...] = ()  # every digest the products name
    document_id: UUID | None = None  # the document's, when there is one


def confidence(status: str, justification: str | None, completeness: str) -> float:
    """How sure a statement is; clients order findings by it.

    Complete evidence: not_affected 0.95 (0.98 for the strongest
    justifications) > affected 0.90 > under_investigation 0.60 > unknown 0.50.
    A partial runtime profile may have missed a load, so "never loaded" is
    worth less; "was loaded" stays as sure.
    """
    if status == NOT_AFFECTED:
        score = 0.98 if justification in STRONG_JUSTIFICATIONS else 0.95
        return score if completeness == COMPLETE else round(score - 0.25, 2)
    if status == AFFECTED:
        return 0.90
    if status == UNDER_INVESTIGATION:
        return 0.60 if completeness == COMPLETE else 0.50
    return 0.50


def action_for(match: Match) -> str:
    name = match.package.name
    if match.fix_state == "fixed" and match.fix_versions:
        return f"Upgrade {name} to {' or '.join(match.fix_versions)}"
    return (
        f"Upgrade {name} to a version not affected by {match.vulnerability_id}, or remove "
        "it from the image; no fixed version is known yet"
    )


def build(
    full: Manifest,
    relevant: Manifest,
    info: DocumentInfo,
    *,
    completeness: str = COMPLETE,
    loaded_files: Mapping[tuple[str, str], Sequence[str]] | None = None,
    validate: bool = True,
) -> BuildResult:
    """``loaded_files``: (package name, version) → files used, from the filtered SBOM.

    ``validate=False`` only for measuring the build alone; stored documents are validated.
    """
    full_pairs = _first_by_key(full.matches)
    relevant_pairs = _first_by_key(relevant.matches)
    full_packages = {package_key(m) for m in full.matches}
    loaded_packages = {package_key(m) for m in relevant.matches}
    relevant_only = {
        key: match
        for key, match in relevant_pairs.items()
        if key not in full_pairs and package_key(match) not in full_packages
    }
    pairs = {**relevant_only, **full_pairs}
    loaded = {
        key
        for key, match in pairs.items()
        if key in relevant_pairs or package_key(match) in loaded_packages
    }
    context = _Context(
        image_products(info.image_ref, info.digests),
        Observation(info.observed_seconds, completeness),
        loaded_files or {},
    )

    statements, results = [], []
    for key in sorted(pairs, key=lambda k: (k[0], k not in loaded, k[1])):
        statement, result = _statement(pairs[key], key in loaded, context)
        statements.append(statement)
        results.append(result)

    counts = Counter(s["status"] for s in statements)
    summary = _summary(full, relevant, results, counts, completeness, len(relevant_only))
    document = _document(statements, info) if statements else None
    if document is not None and validate:
        validate_document(document)
    return BuildResult(
        document,
        results,
        summary,
        dict(sorted(counts.items())),
        info.digests,
        info.document_id if document is not None else None,
    )


def pair_key(match: Match) -> tuple[str, str]:
    """(vulnerability, package) as a scanner tells packages apart: by the unqualified purl.

    Two manifest entries that differ only in qualifiers are one finding to a
    scanner, so they make one statement, affected if either was loaded.
    """
    return match.vulnerability_id, subcomponent_purls(match.package.purl)[0]


def package_key(match: Match) -> tuple[str, str, str]:
    """(vulnerability, package name, version): the package whatever purl or type it was given.

    The relevant manifest may name a loaded package by another purl than the full one
    (none at all, so the reader derives one; another namespace; no type). Were the two only
    paired by purl, the full manifest's entry would be stated not_affected while the package
    was loaded: a finding hidden that is reachable. A package loaded under either name is
    affected under both; two ecosystems' packages of one name and version, one loaded, are
    both affected, the safe side of the doubt.
    """
    return match.vulnerability_id, match.package.name, match.package.version


def _first_by_key(matches: list[Match]) -> dict[tuple[str, str], Match]:
    pairs: dict[tuple[str, str], Match] = {}
    for match in matches:
        pairs.setdefault(pair_key(match), match)
    return pairs


@dataclass(frozen=True)
class _Context:
    """What every statement of one build shares."""

    products: list[dict[str, Any]]
    observation: Observation
    loaded_files: Mapping[tuple[str, str], Sequence[str]]
    _products_by_purl: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def products_of(self, purl: str) -> list[dict[str, Any]]:
        """The statement's products for a package; one list per package, shared by its statements.

        A package has a statement per vulnerability: sharing the list saves most of
        the build's allocations. Nothing changes a built document in place.
        """
        found = self._products_by_purl.get(purl)
        if found is None:
            subcomponents = [{"@id": form} for form in subcomponent_purls(purl)]
            found = [{**product, "subcomponents": subcomponents} for product in self.products]
            self._products_by_purl[purl] = found
        return found


def _statement(
    match: Match, was_loaded: bool, context: _Context
) -> tuple[dict[str, Any], dict[str, Any]]:
    package = match.package
    vulnerability: dict[str, Any] = {"name": match.vulnerability_id}
    if match.data_source.startswith(("http://", "https://")):
        vulnerability["@id"] = match.data_source
    if match.aliases:
        vulnerability["aliases"] = list(match.aliases)
    statement: dict[str, Any] = {
        "vulnerability": vulnerability,
        "products": context.products_of(package.purl),
    }
    label = f"{package.name}@{package.version}" if package.version else package.name
    action = None
    if was_loaded:
        action = action_for(match)
        justification = None
        files = context.loaded_files.get((package.name, package.version), ())
        notes = loaded(label, context.observation, files)
        statement.update(status=AFFECTED, status_notes=notes, action_statement=action)
    else:
        justification = NOT_IN_EXECUTE_PATH
        notes = not_loaded(label, context.observation)
        statement.update(status=NOT_AFFECTED, status_notes=notes, justification=justification)
    completeness = context.observation.completeness
    result = {
        "cve_id": match.vulnerability_id,
        "status": statement["status"],
        "justification": justification,
        "confidence_score": confidence(statement["status"], justification, completeness),
        "reason": notes,
        "action": action,
        "package": label,
        "package_name": package.name,
        "package_version": package.version,
        "purl": package.purl,
        "severity": match.severity,
        "fix_state": match.fix_state,
        "fix_versions": list(match.fix_versions),
        "aliases": list(match.aliases),
    }
    return statement, result


def _summary(
    full: Manifest,
    relevant: Manifest,
    results: list[dict[str, Any]],
    counts: Counter,
    completeness: str,
    relevant_only: int,
) -> dict[str, Any]:
    by_severity = {s: {AFFECTED: 0, NOT_AFFECTED: 0} for s in SEVERITIES}
    for result in results:
        by_severity[result["severity"]][result["status"]] += 1
    problems = [*full.problems, *relevant.problems]
    derived = sorted(
        {m.package.purl for m in [*full.matches, *relevant.matches] if m.package.purl_derived}
    )
    return {
        "total_statements": len(results),
        "vulnerabilities": len({r["cve_id"] for r in results}),
        "by_status": {
            AFFECTED: counts.get(AFFECTED, 0),
            NOT_AFFECTED: counts.get(NOT_AFFECTED, 0),
            UNDER_INVESTIGATION: 0,
            "fixed": 0,
        },
        "by_severity": by_severity,
        "components_seen": len({m.package.purl for m in full.matches}),
        "loaded_components": len({m.package.purl for m in relevant.matches}),
        "evidence_completeness": completeness,
        "relevant_only_pairs": relevant_only,
        "malformed_entries": len(problems),
        "malformed": [{"where": p.where, "reason": p.reason} for p in problems[:50]],
        "derived_purls": derived[:50],
    }


def _document(statements: list[dict[str, Any]], info: DocumentInfo) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "@id": f"{info.id_base.rstrip('/')}/{info.document_id}",
        "author": info.author,
        "role": info.role,
        "timestamp": utc_timestamp(info.timestamp),
        "version": 1,
        "tooling": info.tooling,
        "statements": statements,
    }
