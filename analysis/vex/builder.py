"""Reachability results and an OpenVEX v0.2.0 document from Kubescape's manifests.

One statement per (vulnerability, package) of the full manifest. A pair that
is also in the relevant (runtime-filtered) manifest was loaded during the
observed run: ``affected``, with an action. Any other pair was not:
``not_affected`` / ``vulnerable_code_not_in_execute_path``. Results, summary
and document come from the same pass, so they cannot disagree.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from analysis.image_reference import parse_image_reference
from analysis.kubescape.readers import SEVERITIES, Manifest, Match
from reliability.exceptions import utc_timestamp

from .schema import validate_document

CONTEXT = "https://openvex.dev/ns/v0.2.0"
AFFECTED, NOT_AFFECTED = "affected", "not_affected"
UNDER_INVESTIGATION, UNKNOWN_STATUS = "under_investigation", "unknown"
NOT_IN_EXECUTE_PATH = "vulnerable_code_not_in_execute_path"
STRONG_JUSTIFICATIONS = frozenset({"component_not_present", "vulnerable_code_not_present"})
COMPLETE, PARTIAL = "complete", "partial"


@dataclass(frozen=True)
class DocumentInfo:
    """Document-level values; ``timestamp`` is injectable for reproducible output."""

    image_ref: str
    image_digest: str
    author: str
    tooling: str
    id_base: str
    timestamp: datetime
    role: str = "Runtime reachability analysis"


@dataclass
class BuildResult:
    document: dict[str, Any] | None
    results: list[dict[str, Any]]
    summary: dict[str, Any]
    statement_counts: dict[str, int] = field(default_factory=dict)


def confidence(status: str, justification: str | None, evidence: str) -> float:
    """How sure a statement is; clients order findings by it.

    Complete evidence: not_affected 0.95 (0.98 for the strongest
    justifications) > affected 0.90 > under_investigation 0.60 > unknown 0.50.
    A partial runtime profile may have missed a load, so "never loaded" is
    worth less; "was loaded" stays as sure.
    """
    if status == NOT_AFFECTED:
        score = 0.98 if justification in STRONG_JUSTIFICATIONS else 0.95
        return score if evidence == COMPLETE else round(score - 0.25, 2)
    if status == AFFECTED:
        return 0.90
    if status == UNDER_INVESTIGATION:
        return 0.60 if evidence == COMPLETE else 0.50
    return 0.50


def image_purl(image_ref: str, image_digest: str) -> str:
    """``pkg:oci/<name>@sha256%3A<hex>?repository_url=<registry/path>[&tag=…]``."""
    reference = parse_image_reference(image_ref)
    qualifiers = {"repository_url": f"{reference.registry}/{reference.repository}"}
    if reference.tag:
        qualifiers["tag"] = reference.tag
    query = "&".join(f"{key}={value}" for key, value in sorted(qualifiers.items()))
    return f"pkg:oci/{reference.name}@{image_digest.replace(':', '%3A')}?{query}"


def action_for(match: Match) -> str:
    name = match.package.name
    if match.fix_state == "fixed" and match.fix_versions:
        return f"Upgrade {name} to {' or '.join(match.fix_versions)}"
    return (f"Upgrade {name} to a version not affected by {match.vulnerability_id}, or remove "
            "it from the image; no fixed version is known yet")


def build(
    full: Manifest,
    relevant: Manifest,
    info: DocumentInfo,
    *,
    evidence: str = COMPLETE,
    validate: bool = True,
) -> BuildResult:
    """``validate=False`` only for measuring the build alone; stored documents are validated."""
    full_pairs = _first_by_key(full.matches)
    relevant_pairs = _first_by_key(relevant.matches)
    relevant_only = relevant_pairs.keys() - full_pairs.keys()
    product = image_purl(info.image_ref, info.image_digest)

    statements, results = [], []
    for key in sorted(full_pairs.keys() | relevant_pairs.keys()):
        match = full_pairs.get(key) or relevant_pairs[key]
        loaded = key in relevant_pairs
        statement, result = _statement(match, loaded, product, evidence)
        statements.append(statement)
        results.append(result)

    counts = Counter(s["status"] for s in statements)
    summary = _summary(full, relevant, results, counts, evidence, len(relevant_only))
    document = _document(statements, info) if statements else None
    if document is not None and validate:
        validate_document(document)
    return BuildResult(document, results, summary, dict(sorted(counts.items())))


def _first_by_key(matches: list[Match]) -> dict[tuple[str, str], Match]:
    pairs: dict[tuple[str, str], Match] = {}
    for match in matches:
        pairs.setdefault(match.key, match)
    return pairs


def _statement(
    match: Match, loaded: bool, product: str, evidence: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    package = match.package
    vulnerability: dict[str, Any] = {"name": match.vulnerability_id}
    if match.data_source.startswith(("http://", "https://")):
        vulnerability["@id"] = match.data_source
    if match.aliases:
        vulnerability["aliases"] = list(match.aliases)
    statement: dict[str, Any] = {
        "vulnerability": vulnerability,
        "products": [{"@id": product, "subcomponents": [{"@id": package.purl}]}],
    }
    label = f"{package.name}@{package.version}" if package.version else package.name
    if loaded:
        action = action_for(match)
        statement.update(status=AFFECTED, action_statement=action)
        justification = None
        reason = (f"Package {label} was loaded during the observed run, so the vulnerable "
                  f"code is reachable. Action: {action}")
    else:
        justification = NOT_IN_EXECUTE_PATH
        impact = f"Package {label} was never loaded during the observed run."
        statement.update(status=NOT_AFFECTED, justification=justification,
                         impact_statement=impact)
        reason = impact + (" The runtime profile was partial." if evidence == PARTIAL else "")
    result = {
        "cve_id": match.vulnerability_id,
        "status": statement["status"],
        "justification": justification,
        "confidence_score": confidence(statement["status"], justification, evidence),
        "reason": reason,
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
    evidence: str,
    relevant_only: int,
) -> dict[str, Any]:
    by_severity = {s: {AFFECTED: 0, NOT_AFFECTED: 0} for s in SEVERITIES}
    for result in results:
        by_severity[result["severity"]][result["status"]] += 1
    problems = [*full.problems, *relevant.problems]
    derived = sorted({m.package.purl for m in [*full.matches, *relevant.matches]
                      if m.package.purl_derived})
    return {
        "total_statements": len(results),
        "vulnerabilities": len({r["cve_id"] for r in results}),
        "by_status": {AFFECTED: counts.get(AFFECTED, 0), NOT_AFFECTED: counts.get(NOT_AFFECTED, 0),
                      UNDER_INVESTIGATION: 0, "fixed": 0},
        "by_severity": by_severity,
        "components_seen": len({m.package.purl for m in full.matches}),
        "loaded_components": len({m.package.purl for m in relevant.matches}),
        "evidence_completeness": evidence,
        "relevant_only_pairs": relevant_only,
        "malformed_entries": len(problems),
        "malformed": [{"where": p.where, "reason": p.reason} for p in problems[:50]],
        "derived_purls": derived[:50],
    }


def _document(statements: list[dict[str, Any]], info: DocumentInfo) -> dict[str, Any]:
    canonical = json.dumps([info.image_digest, statements], sort_keys=True,
                           separators=(",", ":")).encode()
    return {
        "@context": CONTEXT,
        "@id": f"{info.id_base.rstrip('/')}/{hashlib.sha256(canonical).hexdigest()}",
        "author": info.author,
        "role": info.role,
        "timestamp": utc_timestamp(info.timestamp),
        "version": 1,
        "tooling": info.tooling,
        "statements": statements,
    }
