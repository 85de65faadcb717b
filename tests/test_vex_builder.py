"""The OpenVEX builder: shared samples, behaviours, and properties on generated manifests."""

from __future__ import annotations

import json
import string
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from analysis.kubescape.readers import SEVERITIES, Manifest, read_manifest
from analysis.vex.builder import (
    AFFECTED,
    COMPLETE,
    NOT_AFFECTED,
    NOT_IN_EXECUTE_PATH,
    PARTIAL,
    UNDER_INVESTIGATION,
    BuildResult,
    DocumentInfo,
    build,
    confidence,
    package_key,
    pair_key,
)
from analysis.vex.products import image_products
from analysis.vex.purls import subcomponent_purls

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SCHEMA = json.loads((ROOT / "analysis" / "vex" / "openvex_json_schema.json").read_text())
Draft202012Validator.check_schema(SCHEMA)
VALIDATOR = Draft202012Validator(SCHEMA)

DIGEST = "sha256:" + "0123456789abcdef" * 4
ID_BASE = "https://vexxy.dev/vex"
DOCUMENT_ID = UUID("6f1c0d2e-8a4b-4c3d-9e2f-0123456789ab")
WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
INFO = DocumentInfo(
    image_ref="nginx:1.25",
    image_digest=DIGEST,
    author="VEXxy Premium Service",
    tooling="vexxy-premium/test",
    id_base=ID_BASE,
    timestamp=WHEN,
    document_id=DOCUMENT_ID,
)
NGINX_PURL = "pkg:oci/nginx@sha256%3A" + DIGEST[7:]
NGINX_PRODUCT = {
    "@id": NGINX_PURL,
    "identifiers": {"purl": NGINX_PURL + "?repository_url=docker.io/library/nginx&tag=1.25"},
    "hashes": {"sha-256": DIGEST[7:]},
}


@cache
def load(name: str) -> Any:
    text = (FIXTURES / name).read_text()
    if name.endswith(".json"):
        return json.loads(text)
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


def raw_matches(data: dict[str, Any]) -> list[dict[str, Any]]:
    return data["Content"]["matches"] if "Content" in data else data["spec"]["payload"]["matches"]


def entry(
    vid: Any = "CVE-2024-0001", name: str = "openssl", purl: Any = None, **vulnerability: Any
) -> dict[str, Any]:
    related = vulnerability.pop("related", None)
    return {
        "vulnerability": {"id": vid, **vulnerability},
        "relatedVulnerabilities": related,
        "artifact": {
            "name": name,
            "version": "1.0",
            "type": "deb",
            "purl": f"pkg:deb/debian/{name}@1.0" if purl is None else purl,
        },
    }


def manifest(*matches: Any, where: str = "full_manifest") -> Manifest:
    return read_manifest({"spec": {"payload": {"matches": list(matches)}}}, where)


def relevant(*matches: Any) -> Manifest:
    return manifest(*matches, where="relevant_manifest")


def key(statement: dict[str, Any]) -> tuple[str, str]:
    return statement["vulnerability"]["name"], statement["products"][0]["subcomponents"][0]["@id"]


def unqualified(purl: str) -> str:
    return subcomponent_purls(purl)[0]


def pair_key_of_result(result: dict[str, Any]) -> str:
    return unqualified(result["purl"])


def by_key(result: BuildResult) -> dict[tuple[str, str], tuple[dict, dict]]:
    statements = result.document["statements"] if result.document else []
    return {key(s): (s, r) for s, r in zip(statements, result.results, strict=True)}


def assert_valid(document: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(document)]
    assert errors == []


def in_document_order(
    keys: set[tuple[str, str]], affected: set[tuple[str, str]]
) -> list[tuple[str, str]]:
    """By vulnerability, affected statements first, then by package."""
    return sorted(keys, key=lambda k: (k[0], k not in affected, k[1]))


def first_by_pair(matches: list[Any]) -> dict[tuple[str, str], Any]:
    first: dict[tuple[str, str], Any] = {}
    for match in matches:
        first.setdefault(pair_key(match), match)
    return first


def assert_consistent(result: BuildResult, full: Manifest, rel: Manifest) -> None:
    """What must hold for any input: counts, statuses and summary agree with each other.

    A pair is affected when the relevant manifest has it, or has its package (same
    vulnerability, name and version) under another purl.
    """
    full_pairs, rel_pairs = first_by_pair(full.matches), first_by_pair(rel.matches)
    full_packages = {package_key(m) for m in full.matches}
    loaded_packages = {package_key(m) for m in rel.matches}
    rel_only = {
        k
        for k, m in rel_pairs.items()
        if k not in full_pairs and package_key(m) not in full_packages
    }
    rel_keys = {
        k
        for k in full_pairs.keys() | rel_only
        if k in rel_pairs or package_key(full_pairs.get(k) or rel_pairs[k]) in loaded_packages
    }
    keys = in_document_order(full_pairs.keys() | rel_only, rel_keys)
    summary = result.summary
    assert [(r["cve_id"], pair_key_of_result(r)) for r in result.results] == keys
    assert summary["total_statements"] == len(keys)
    assert summary["relevant_only_pairs"] == len(rel_only)
    assert summary["malformed_entries"] == len(full.problems) + len(rel.problems)
    statuses = Counter(r["status"] for r in result.results)
    assert {k: v for k, v in summary["by_status"].items() if v} == dict(statuses)
    assert sum(summary["by_status"].values()) == len(keys)
    assert result.statement_counts == dict(statuses)
    assert {
        (sev, status): n
        for sev, row in summary["by_severity"].items()
        for status, n in row.items()
        if n
    } == dict(Counter((r["severity"], r["status"]) for r in result.results))
    assert sum(n for row in summary["by_severity"].values() for n in row.values()) == len(keys)
    assert {
        (r["cve_id"], pair_key_of_result(r)) for r in result.results if r["status"] == AFFECTED
    } == rel_keys
    if not keys:
        assert result.document is None
        return
    document = result.document
    assert_valid(document)
    assert [key(s) for s in document["statements"]] == keys  # one per pair, in order
    assert {k for k, (s, _) in by_key(result).items() if s["status"] == AFFECTED} == rel_keys
    for statement, outcome in by_key(result).values():
        assert statement["status"] == outcome["status"]
        assert statement["status_notes"] == outcome["reason"]
        if statement["status"] == AFFECTED:  # go-vex: no justification/impact on affected
            assert not {"justification", "impact_statement"} & statement.keys()
            assert statement["action_statement"] == outcome["action"]
        else:
            assert "action_statement" not in statement
            assert outcome["action"] is None


@pytest.mark.parametrize(
    ("loaded_as", "loaded_type"),
    [
        ("", "deb"),
        ("", ""),
        ("pkg:apk/busybox@1.0", "deb"),
        ("pkg:apk/other/busybox@1.0?arch=x86_64", "deb"),
    ],
    ids=["no-purl", "no-purl-no-type", "no-namespace", "other-namespace"],
)
def test_a_package_loaded_under_another_purl_is_affected_not_hidden(loaded_as, loaded_type):
    """The full manifest's purl is the one scanners match: stating it not_affected while the
    relevant manifest saw the same package loaded would suppress a reachable finding."""
    full = manifest(entry("CVE-2024-0007", "busybox", purl="pkg:apk/alpine/busybox@1.0"))
    loaded = entry("CVE-2024-0007", "busybox", purl=loaded_as)
    loaded["artifact"]["type"] = loaded_type
    rel = relevant(loaded)

    result = build(full, rel, INFO)

    (statement,) = result.document["statements"]
    assert statement["status"] == AFFECTED
    assert [s["@id"] for s in statement["products"][0]["subcomponents"]] == [
        "pkg:apk/alpine/busybox@1.0"
    ]
    assert result.summary["relevant_only_pairs"] == 0
    assert_consistent(result, full, rel)


# -- the shared samples ---------------------------------------------------------------------

SAMPLES = [
    pytest.param("kubevuln_nginx-cve-small.json", "nginx-relevant-small.json", 4, 1, id="nginx"),
    pytest.param(
        "storage_vulnerabilitymanifest_01-example.yaml",
        "example-relevant-manifest.json",
        143,
        13,
        id="storage-example",
    ),
]
SAMPLE_FILES = [pytest.param(*p.values[:2], id=p.id) for p in SAMPLES]


def build_sample(
    full_name: str, relevant_name: str, info: DocumentInfo = INFO, **kwargs: Any
) -> tuple[BuildResult, Manifest, Manifest]:
    full = read_manifest(load(full_name), "full_manifest")
    rel = read_manifest(load(relevant_name), "relevant_manifest")
    return build(full, rel, info, **kwargs), full, rel


@pytest.mark.parametrize(("full_name", "relevant_name", "statements", "affected"), SAMPLES)
def test_samples_give_one_valid_statement_per_pair_and_affected_exactly_when_relevant(
    full_name, relevant_name, statements, affected
):
    result, full, rel = build_sample(full_name, relevant_name)
    raw_full, raw_rel = raw_matches(load(full_name)), raw_matches(load(relevant_name))
    pairs = {(m["vulnerability"]["id"], unqualified(m["artifact"]["purl"])) for m in raw_full}
    relevant_pairs = {
        (m["vulnerability"]["id"], unqualified(m["artifact"]["purl"])) for m in raw_rel
    }

    assert_valid(result.document)
    assert_consistent(result, full, rel)
    assert (len(pairs), len(relevant_pairs)) == (statements, affected)
    assert {key(s) for s in result.document["statements"]} == pairs
    assert {key(s) for s in result.document["statements"] if s["status"] == AFFECTED} == (
        relevant_pairs
    )
    assert result.statement_counts == {AFFECTED: affected, NOT_AFFECTED: statements - affected}
    assert result.summary["by_severity"] == {
        sev: {
            status: sum(
                1
                for m in raw_full
                if m["vulnerability"]["severity"] == sev
                and (
                    (m["vulnerability"]["id"], unqualified(m["artifact"]["purl"])) in relevant_pairs
                )
                == (status == AFFECTED)
            )
            for status in (AFFECTED, NOT_AFFECTED)
        }
        for sev in SEVERITIES
    }
    assert (result.summary["malformed_entries"], result.summary["derived_purls"]) == (0, [])


@pytest.mark.parametrize(("full_name", "relevant_name"), SAMPLE_FILES)
def test_samples_products_and_aliases(full_name, relevant_name):
    result, _, _ = build_sample(full_name, relevant_name)
    expected_aliases = {
        (m["vulnerability"]["id"], unqualified(m["artifact"]["purl"])): sorted(
            {r["id"] for r in m["relatedVulnerabilities"] or []} - {m["vulnerability"]["id"]}
        )
        for m in raw_matches(load(full_name))
    }

    for statement in result.document["statements"]:
        [product] = statement["products"]
        assert {k: v for k, v in product.items() if k != "subcomponents"} == NGINX_PRODUCT
        assert product["subcomponents"] == [
            {"@id": p}
            for p in subcomponent_purls(
                next(
                    r["purl"]
                    for r in result.results
                    if (r["cve_id"], unqualified(r["purl"])) == key(statement)
                )
            )
        ]
        assert statement["vulnerability"].get("aliases", []) == expected_aliases[key(statement)]
        assert statement["vulnerability"]["@id"].startswith("https://")


@pytest.mark.parametrize(("full_name", "relevant_name"), SAMPLE_FILES)
def test_samples_are_deterministic(full_name, relevant_name):
    first, full, rel = build_sample(full_name, relevant_name)
    same_instant = replace(INFO, timestamp=WHEN.astimezone(timezone(timedelta(hours=5))))
    reordered = build(
        Manifest(full.name, {}, {}, None, full.matches[::-1]),
        Manifest(rel.name, {}, {}, None, rel.matches[::-1]),
        INFO,
    )

    assert build_sample(full_name, relevant_name)[0] == first
    assert build_sample(full_name, relevant_name, same_instant)[0] == first
    assert reordered.document == first.document
    assert json.dumps(reordered.document) == json.dumps(first.document)  # key order too


# -- document and products ------------------------------------------------------------------


@pytest.mark.parametrize("id_base", [ID_BASE, ID_BASE + "/", "urn:example:vex"])
def test_the_document_header(id_base):
    moment = datetime(2024, 5, 6, 9, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    info = DocumentInfo(
        image_ref="nginx:1.25",
        image_digest=DIGEST,
        author="Author",
        tooling="Tooling",
        id_base=id_base,
        timestamp=moment,
        document_id=DOCUMENT_ID,
    )
    document = build(manifest(entry()), relevant(), info).document

    assert document["@context"] == "https://openvex.dev/ns/v0.2.0"
    assert document["version"] == 1
    assert document["timestamp"] == "2024-05-06T07:08:09.123456Z"
    assert (document["author"], document["tooling"]) == ("Author", "Tooling")
    # The id the service stores it under: GET /api/v1/vex/{that id} answers with it.
    assert document["@id"] == id_base.rstrip("/") + "/" + str(DOCUMENT_ID)
    assert urlsplit(document["@id"]).scheme in {"https", "urn"}
    assert_valid(document)


@pytest.mark.parametrize(
    ("image_ref", "name", "identifier"),
    [
        ("nginx:1.25", "nginx", "?repository_url=docker.io/library/nginx&tag=1.25"),
        (
            "docker.io/library/nginx:1.25",
            "nginx",
            "?repository_url=docker.io/library/nginx&tag=1.25",
        ),
        ("bitnami/redis:7.2", "redis", "?repository_url=docker.io/bitnami/redis&tag=7.2"),
        ("ghcr.io/org/team/app:v1.2", "app", "?repository_url=ghcr.io/org/team/app&tag=v1.2"),
        ("localhost:5000/app", "app", "?repository_url=localhost:5000/app"),
        (f"nginx@{DIGEST}", "nginx", "?repository_url=docker.io/library/nginx"),
    ],
)
def test_the_image_is_an_unqualified_oci_purl_with_the_full_form_in_identifiers(
    image_ref, name, identifier
):
    bare = f"pkg:oci/{name}@sha256%3A{DIGEST[7:]}"
    [product] = image_products(image_ref, [DIGEST])
    assert product == {
        "@id": bare,
        "identifiers": {"purl": bare + identifier},
        "hashes": {"sha-256": DIGEST[7:]},
    }


def test_one_product_per_known_digest_in_every_statement():
    index, platform = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    info = replace(INFO, image_digest=index, other_digests=(platform, index, platform))
    result = build(manifest(entry()), relevant(), info)

    [statement] = result.document["statements"]
    assert [p["hashes"]["sha-256"] for p in statement["products"]] == ["a" * 64, "b" * 64]
    assert {json.dumps(p["subcomponents"]) for p in statement["products"]} == {
        json.dumps([{"@id": "pkg:deb/debian/openssl@1.0"}])
    }
    assert result.image_digests == (index, platform)
    assert_valid(result.document)


# -- statements and results -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fix", "action"),
    [
        ({"state": "fixed", "versions": ["3.0.13"]}, "Upgrade openssl to 3.0.13"),
        ({"state": "fixed", "versions": ["3.0.13", "3.1.5"]}, "Upgrade openssl to 3.0.13 or 3.1.5"),
        ({"state": "fixed", "versions": []}, None),
        ({"state": "not-fixed", "versions": ["9.9.9"]}, None),
        ({"state": "wont-fix", "versions": None}, None),
        (None, None),
    ],
)
def test_affected_carries_an_action_and_says_why(fix, action):
    result = build(
        manifest(entry(fix=fix)), relevant(entry(fix=fix)), replace(INFO, observed_seconds=300)
    )
    [(statement, outcome)] = by_key(result).values()

    assert statement["status"] == outcome["status"] == AFFECTED
    assert "justification" not in statement
    assert "impact_statement" not in statement
    assert outcome["justification"] is None
    assert (
        statement["status_notes"]
        == outcome["reason"]
        == (
            "Package openssl@1.0 was loaded during 300 s of observed execution, so the vulnerable "
            "code is reachable."
        )
    )
    assert outcome["action"] == statement["action_statement"]
    if action:
        assert statement["action_statement"] == action
    else:  # generic: no version claimed
        assert statement["action_statement"].startswith("Upgrade openssl ")
        assert "9.9.9" not in statement["action_statement"]
        assert not statement["action_statement"].rstrip().endswith(" to")
    assert_valid(result.document)


@pytest.mark.parametrize(
    ("seconds", "evidence", "notes"),
    [
        (
            300,
            COMPLETE,
            "Package openssl@1.0 was not loaded during 300 s of observed execution; "
            "profile complete.",
        ),
        (
            60,
            PARTIAL,
            "Package openssl@1.0 was not loaded during 60 s of observed execution; "
            "profile partial: a load may have been missed.",
        ),
        (
            None,
            COMPLETE,
            "Package openssl@1.0 was not loaded during the observed execution; profile complete.",
        ),
    ],
)
def test_not_loaded_packages_are_not_affected_with_the_observation_window(seconds, evidence, notes):
    result = build(
        manifest(entry()),
        relevant(),
        replace(INFO, observed_seconds=seconds),
        completeness=evidence,
    )
    [(statement, outcome)] = by_key(result).values()

    assert statement["status"] == outcome["status"] == NOT_AFFECTED
    assert statement["justification"] == outcome["justification"] == NOT_IN_EXECUTE_PATH
    assert statement["status_notes"] == outcome["reason"] == notes
    assert "action_statement" not in statement
    assert outcome["action"] is None


def test_the_files_the_filtered_sbom_names_are_the_evidence_for_affected():
    files = [f"/usr/lib/libssl.so.{n}" for n in range(7)]
    result = build(
        manifest(entry(), entry(name="zlib")),
        relevant(entry(), entry(name="zlib")),
        replace(INFO, observed_seconds=120),
        loaded_files={("openssl", "1.0"): files},
    )
    notes = {r["package_name"]: r["reason"] for r in result.results}

    assert notes["openssl"] == (
        "Package openssl@1.0 was loaded during 120 s of observed execution (files used: "
        "/usr/lib/libssl.so.0, /usr/lib/libssl.so.1, /usr/lib/libssl.so.2, "
        "/usr/lib/libssl.so.3, /usr/lib/libssl.so.4 and 2 more), so the vulnerable code is "
        "reachable."
    )
    assert "files used" not in notes["zlib"]


def test_a_cve_with_mixed_statuses_lists_affected_first():
    """``vexctl filter`` decides a CVE by its first statement: it must keep the finding."""
    full = manifest(entry("CVE-1", name="aaa"), entry("CVE-1", name="zzz"), entry("CVE-0"))
    result = build(full, relevant(entry("CVE-1", name="zzz")), INFO)

    assert [(s["vulnerability"]["name"], s["status"]) for s in result.document["statements"]] == [
        ("CVE-0", NOT_AFFECTED),
        ("CVE-1", AFFECTED),
        ("CVE-1", NOT_AFFECTED),
    ]
    assert [r["package_name"] for r in result.results] == ["openssl", "zzz", "aaa"]


def test_entries_differing_only_in_qualifiers_are_one_statement_affected_if_either_loaded():
    amd64 = entry(purl="pkg:deb/debian/openssl@1.0?arch=amd64&distro=debian-12")
    i386 = entry(purl="pkg:deb/debian/openssl@1.0?arch=i386&distro=debian-12")
    result = build(manifest(amd64, i386), relevant(i386), INFO)

    [statement] = result.document["statements"]
    assert statement["status"] == AFFECTED
    assert result.summary["total_statements"] == 1


def test_vulnerability_aliases_and_data_source():
    related = [
        {"id": "CVE-2024-0001"},
        {"id": "GHSA-aaaa-bbbb-cccc"},
        {"id": "CVE-2023-9"},
        {"id": "GHSA-aaaa-bbbb-cccc"},
    ]
    result = build(
        manifest(
            entry(related=related, dataSource="https://nvd/CVE-2024-0001"),
            entry("CVE-2024-0002", dataSource="debian:12"),
        ),
        relevant(),
        INFO,
    )
    first, second = result.document["statements"]

    assert first["vulnerability"] == {
        "name": "CVE-2024-0001",
        "@id": "https://nvd/CVE-2024-0001",
        "aliases": ["CVE-2023-9", "GHSA-aaaa-bbbb-cccc"],
    }
    assert second["vulnerability"] == {"name": "CVE-2024-0002"}  # not a URL: no @id
    assert result.results[0]["aliases"] == ["CVE-2023-9", "GHSA-aaaa-bbbb-cccc"]
    assert_valid(result.document)


def test_a_malformed_entry_is_counted_and_the_rest_is_built():
    full = manifest(entry("CVE-1"), "garbage", entry("CVE-2"), {"vulnerability": {}})
    rel = relevant(entry("CVE-2"), {"vulnerability": {"id": "CVE-3"}, "artifact": {}})
    result = build(full, rel, INFO)

    assert [r["cve_id"] for r in result.results] == ["CVE-1", "CVE-2"]
    assert result.summary["malformed_entries"] == 3
    assert [m["where"] for m in result.summary["malformed"]] == [
        "full_manifest.spec.payload.matches.1",
        "full_manifest.spec.payload.matches.3",
        "relevant_manifest.spec.payload.matches.1",
    ]
    assert_consistent(result, full, rel)


def test_a_missing_vulnerability_id_is_unknown_not_a_crash():
    full = manifest(
        {
            "vulnerability": {"severity": "High"},
            "artifact": {"name": "zlib", "purl": "pkg:deb/zlib@1"},
        },
        entry(),
    )
    result = build(full, relevant(), INFO)

    assert [r["cve_id"] for r in result.results] == ["CVE-2024-0001", "UNKNOWN"]
    assert result.document["statements"][1]["vulnerability"]["name"] == "UNKNOWN"
    assert_consistent(result, full, relevant())


def test_packages_without_purl_get_a_derived_one_listed_in_the_summary():
    full = manifest(entry(name="busybox", purl=""), entry("CVE-2", name="musl", purl=None))
    result = build(full, relevant(), INFO)

    assert result.summary["derived_purls"] == ["pkg:deb/busybox@1.0"]
    assert {key(s)[1] for s in result.document["statements"]} == {
        "pkg:deb/busybox@1.0",
        "pkg:deb/debian/musl@1.0",
    }


def test_a_relevant_only_pair_with_a_derived_purl_is_listed_too():
    """BUG: ``derived_purls`` only looks at the full manifest."""
    result = build(manifest(), relevant(entry(name="busybox", purl="")), INFO)
    assert result.document["statements"][0]["status"] == AFFECTED
    assert result.summary["derived_purls"] == ["pkg:deb/busybox@1.0"]


def test_a_pair_only_in_the_relevant_manifest_is_affected_and_counted():
    full, rel = manifest(entry("CVE-1")), relevant(entry("CVE-1"), entry("CVE-9", name="zlib"))
    result = build(full, rel, INFO)

    assert [(r["cve_id"], r["status"]) for r in result.results] == [
        ("CVE-1", AFFECTED),
        ("CVE-9", AFFECTED),
    ]
    assert result.summary["relevant_only_pairs"] == 1
    assert_consistent(result, full, rel)


def test_duplicate_pairs_give_one_statement():
    full = manifest(entry(), entry(), entry(name="zlib"), entry())
    result = build(full, relevant(entry(), entry()), INFO)
    assert [r["package_name"] for r in result.results] == ["openssl", "zlib"]
    assert result.statement_counts == {AFFECTED: 1, NOT_AFFECTED: 1}


def test_summary_by_status_and_severity():
    full = manifest(
        entry("CVE-1", severity="High"),
        entry("CVE-2", severity="high"),
        entry("CVE-3", severity="Critical"),
        entry("CVE-4", severity="bogus"),
        entry("CVE-5", severity="Low", name="zlib"),
    )
    result = build(full, relevant(entry("CVE-2"), entry("CVE-5", name="zlib")), INFO)
    summary = result.summary

    assert summary["by_status"] == {
        AFFECTED: 2,
        NOT_AFFECTED: 3,
        UNDER_INVESTIGATION: 0,
        "fixed": 0,
    }
    assert {sev: row for sev, row in summary["by_severity"].items() if any(row.values())} == {
        "Critical": {AFFECTED: 0, NOT_AFFECTED: 1},
        "High": {AFFECTED: 1, NOT_AFFECTED: 1},
        "Low": {AFFECTED: 1, NOT_AFFECTED: 0},
        "Unknown": {AFFECTED: 0, NOT_AFFECTED: 1},
    }
    assert (summary["total_statements"], summary["vulnerabilities"]) == (5, 5)
    assert_consistent(result, full, relevant(entry("CVE-2"), entry("CVE-5", name="zlib")))


@pytest.mark.parametrize("malformed", [[], ["junk", {"artifact": None}]])
def test_no_matches_give_no_document_and_a_zero_summary(malformed):
    result = build(manifest(*malformed), relevant(), INFO)
    summary = result.summary

    assert result.document is None
    assert (result.results, result.statement_counts) == ([], {})
    assert summary["total_statements"] == summary["vulnerabilities"] == 0
    assert set(summary["by_status"].values()) == {0}
    assert {n for row in summary["by_severity"].values() for n in row.values()} == {0}
    assert summary["relevant_only_pairs"] == 0
    assert summary["malformed_entries"] == len(malformed)


# -- confidence -----------------------------------------------------------------------------

COMPLETE_SCORES = [
    (NOT_AFFECTED, NOT_IN_EXECUTE_PATH, 0.95),
    (AFFECTED, None, 0.90),
    (UNDER_INVESTIGATION, None, 0.60),
    ("unknown", None, 0.50),
]


@pytest.mark.parametrize(("status", "justification", "score"), COMPLETE_SCORES)
def test_confidence_with_complete_evidence(status, justification, score):
    assert confidence(status, justification, COMPLETE) == pytest.approx(score)


def test_confidence_ordering_and_partial_evidence():
    complete = [confidence(s, j, COMPLETE) for s, j, _ in COMPLETE_SCORES]
    assert complete == sorted(complete, reverse=True)
    assert len(set(complete)) == len(complete)
    partial = confidence(NOT_AFFECTED, NOT_IN_EXECUTE_PATH, PARTIAL)
    assert partial < confidence(NOT_AFFECTED, NOT_IN_EXECUTE_PATH, COMPLETE)
    assert partial < confidence(AFFECTED, None, PARTIAL) == confidence(AFFECTED, None, COMPLETE)


@pytest.mark.parametrize("evidence", [COMPLETE, PARTIAL])
def test_results_carry_the_confidence_for_their_evidence(evidence):
    result = build(
        manifest(entry("CVE-1"), entry("CVE-2")),
        relevant(entry("CVE-2")),
        INFO,
        completeness=evidence,
    )
    scores = {r["status"]: r["confidence_score"] for r in result.results}

    assert scores[AFFECTED] == pytest.approx(0.90)
    if evidence == COMPLETE:
        assert scores[NOT_AFFECTED] == pytest.approx(0.95)
    else:
        assert scores[NOT_AFFECTED] < 0.90
    assert result.summary["evidence_completeness"] == evidence


# -- properties -----------------------------------------------------------------------------

IDS = ["CVE-2024-0001", "CVE-2024-0002", "GHSA-abcd-efgh-ijkl", "", "  ", None]
MALFORMED = [
    "junk",
    7,
    None,
    [],
    {"vulnerability": {"id": "CVE-1"}},
    {"vulnerability": {"id": "CVE-1"}, "artifact": {"name": " "}},
    {"vulnerability": "CVE-1", "artifact": {"name": "zlib"}},
]

ids = st.one_of(st.sampled_from(IDS), st.text(max_size=8))
names = st.one_of(
    st.sampled_from(["openssl", "zlib", "libc6"]),
    st.text(string.ascii_letters + "-./ é", min_size=1, max_size=8).filter(str.strip),
)
purls = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=12),
    st.sampled_from(["pkg:deb/debian/openssl@3.0.11", "pkg:apk/alpine/zlib@1.3"]),
)
entries = st.builds(
    lambda vid, name, version, kind, purl, severity, fix, related, source: {
        "vulnerability": {"id": vid, "severity": severity, "fix": fix, "dataSource": source},
        "relatedVulnerabilities": related,
        "artifact": {"name": name, "version": version, "type": kind, "purl": purl},
    },
    ids,
    names,
    st.sampled_from(["", "1.0", "1:2.3-4"]),
    st.sampled_from(["deb", "apk", "java-archive", "", None]),
    purls,
    st.sampled_from([*SEVERITIES, "HIGH", "critical", "bogus", None]),
    st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {
                "state": st.sampled_from(["fixed", "not-fixed", "wont-fix", "unknown", None]),
                "versions": st.one_of(
                    st.none(), st.lists(st.sampled_from(["1.1", "2.0.1"]), max_size=2)
                ),
            }
        ),
    ),
    st.one_of(st.none(), st.lists(st.fixed_dictionaries({"id": ids}), max_size=3)),
    st.sampled_from(["https://nvd.nist.gov/vuln/detail/X", "", "debian:12", None]),
)
SHAPES = [
    lambda m: {"metadata": {"name": "x"}, "spec": {"payload": {"matches": m}}},
    lambda m: {"payload": {"matches": m}},
    lambda m: {"Name": "x", "Content": {"matches": m}},
]


@st.composite
def manifest_pairs(draw: st.DrawFn) -> tuple[Any, Any, int, int, int]:
    full = draw(st.lists(entries, max_size=10))
    loaded = draw(st.lists(st.sampled_from(full), max_size=len(full))) if full else []
    rel = loaded + draw(st.lists(entries, max_size=3))  # may hold pairs not in full
    counts = [len(full), len(rel)]
    bad = 0
    for items in (full, rel):
        for junk in draw(st.lists(st.sampled_from(MALFORMED), max_size=2)):
            items.insert(draw(st.integers(0, len(items))), junk)
            bad += 1
    shape = draw(st.sampled_from(SHAPES))
    return shape(full), shape(rel), bad, *counts


PROPERTIES = settings(max_examples=60, deadline=None, database=None)


@PROPERTIES
@given(manifest_pairs(), st.sampled_from([COMPLETE, PARTIAL]))
def test_property_documents_validate_and_counts_agree(pair, evidence):
    raw_full, raw_rel, bad, n_full, n_rel = pair
    full = read_manifest(raw_full, "full_manifest")
    rel = read_manifest(raw_rel, "relevant_manifest")
    assert (len(full.matches), len(rel.matches)) == (n_full, n_rel)
    assert len(full.problems) + len(rel.problems) == bad

    result = build(full, rel, INFO, completeness=evidence)

    assert_consistent(result, full, rel)
    assert result.summary["malformed_entries"] == bad
    if result.document is not None:
        assert all(s["products"][0]["@id"] == NGINX_PURL for s in result.document["statements"])


@PROPERTIES
@given(manifest_pairs())
def test_property_output_is_deterministic(pair):
    raw_full, raw_rel, *_ = pair
    runs = [
        build(
            read_manifest(raw_full, "full_manifest"),
            read_manifest(raw_rel, "relevant_manifest"),
            INFO,
        )
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert json.dumps(runs[0].document) == json.dumps(runs[1].document)
