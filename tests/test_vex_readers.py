"""Readers of Kubescape's objects: every shape, null lists, unreadable input, both VEX shapes."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from analysis.kubescape.readers import (
    UNKNOWN,
    build_purl,
    read_kubescape_vex,
    read_manifest,
    read_match,
    read_sbom,
)
from reliability.exceptions import ValidationError

FIXTURES = Path(__file__).parent / "fixtures"
NGINX_CVE = "CVE-2007-6755"
GUAVA_CVE = "CVE-2020-8908"
NVD_URL = "https://nvd.nist.gov/vuln/detail/"


def load(name: str) -> Any:
    text = (FIXTURES / name).read_text()
    return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)


def entry(vid: Any = "CVE-2024-0001", name: Any = "openssl", **extra: Any) -> dict[str, Any]:
    """One Grype match; ``extra`` goes into ``vulnerability`` unless it is a match-level key."""
    top = {k: extra.pop(k) for k in ("relatedVulnerabilities", "artifact") if k in extra}
    return {
        "vulnerability": {"id": vid, **extra},
        "artifact": {"name": name, "version": "1.0", "type": "deb"},
        **top,
    }


def as_object(payload: dict[str, Any], name: str = "slug", annotations: Any = None) -> dict:
    return {
        "apiVersion": "spdx.softwarecomposition.kubescape.io/v1beta1",
        "kind": "VulnerabilityManifest",
        "metadata": {"name": name, "annotations": annotations, "labels": None},
        "spec": {"metadata": {"withRelevancy": True}, "payload": payload},
    }


def as_spec(payload: dict[str, Any], **_: Any) -> dict:
    return {"metadata": {"withRelevancy": True}, "payload": payload}


def as_wrapper(payload: dict[str, Any], name: str = "slug", annotations: Any = None) -> dict:
    return {
        "Name": name,
        "Wlid": "",
        "Content": payload,
        "Annotations": annotations,
        "Labels": None,
    }


SHAPES = [as_object, as_spec, as_wrapper]


def field_of(excinfo: pytest.ExceptionInfo[ValidationError]) -> str:
    return excinfo.value.details["errors"][0]["field"]


# -- VulnerabilityManifest ------------------------------------------------------------------


def test_the_nginx_wrapper_fixture_reads_every_match():
    raw = load("kubevuln_nginx-cve-small.json")
    manifest = read_manifest(raw, "full_manifest")

    assert manifest.name == raw["ID"]  # no Name in this wrapper: the ID names it
    assert (manifest.annotations, manifest.labels) == ({}, {})  # both null upstream
    assert manifest.problems == []
    assert [m.key for m in manifest.matches] == [
        (m["vulnerability"]["id"], m["artifact"]["purl"]) for m in raw["Content"]["matches"]
    ]
    ssl = manifest.matches[3]
    assert ssl.vulnerability_id == NGINX_CVE
    assert (ssl.package.name, ssl.package.version) == ("libssl1.1", "1.1.0f-3+deb9u2")
    assert (ssl.severity, ssl.fix_state, ssl.fix_versions) == ("Negligible", "not-fixed", ())
    assert ssl.data_source == f"https://security-tracker.debian.org/tracker/{NGINX_CVE}"
    assert not ssl.package.purl_derived
    # every relatedVulnerabilities id equals the match's own id: no aliases
    assert all(m.aliases == () for m in manifest.matches)


def test_the_storage_example_object_reads_all_143_matches():
    raw = load("storage_vulnerabilitymanifest_01-example.yaml")
    manifest = read_manifest(raw, "full_manifest")

    assert manifest.name == raw["metadata"]["name"]
    assert manifest.with_relevancy is True
    assert (len(manifest.matches), manifest.problems) == (143, [])
    assert Counter(m.fix_state for m in manifest.matches) == Counter(
        m["vulnerability"]["fix"]["state"] for m in raw["spec"]["payload"]["matches"]
    )
    assert Counter(m.severity for m in manifest.matches) == Counter(
        m["vulnerability"]["severity"] for m in raw["spec"]["payload"]["matches"]
    )


@pytest.mark.parametrize(
    "fixture", ["kubevuln_nginx-cve-small.json", "storage_vulnerabilitymanifest_01-example.yaml"]
)
def test_object_spec_and_wrapper_give_the_same_matches(fixture):
    raw = load(fixture)
    payload = raw["Content"] if "Content" in raw else raw["spec"]["payload"]
    annotations = {"kubescape.io/instance-id": "apiVersion-apps/v1/namespace-sandbox"}
    read = [
        read_manifest(shape(copy.deepcopy(payload), name="slug", annotations=annotations))
        for shape in SHAPES
    ]

    assert read[0].matches == read[1].matches == read[2].matches
    assert read[0].matches == read_manifest(raw).matches
    assert [r.name for r in read] == ["slug", "", "slug"]  # a bare spec carries no name
    assert [r.annotations for r in read] == [annotations, {}, annotations]


def test_the_wrapper_is_named_by_name_before_id():
    wrapper = {"Name": "by-name", "ID": "by-id", "Content": {"matches": []}}
    assert read_manifest(wrapper).name == "by-name"
    assert read_manifest({**wrapper, "Name": ""}).name == "by-id"


@pytest.mark.parametrize("shape", SHAPES)
def test_null_lists_are_empty_lists(shape):
    match = {
        "vulnerability": {
            "id": "CVE-2024-1",
            "urls": None,
            "cvss": None,
            "fix": {"versions": None, "state": None},
            "advisories": None,
        },
        "relatedVulnerabilities": None,
        "matchDetails": None,
        "artifact": {
            "name": "zlib",
            "version": "1",
            "type": "deb",
            "purl": None,
            "locations": None,
            "licenses": None,
            "cpes": None,
            "upstreams": None,
        },
    }

    assert read_manifest(shape({"matches": None, "ignoredMatches": None})).matches == []
    [read] = read_manifest(shape({"matches": [match]})).matches
    assert (read.fix_versions, read.aliases, read.fix_state) == ((), (), "unknown")
    assert (read.package.purl, read.package.purl_derived) == ("pkg:deb/zlib@1", True)


def _matches_payload(matches: Any) -> dict:
    return {"spec": {"payload": {"matches": matches}}}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "full_manifest"),
        ("a string", "full_manifest"),
        (None, "full_manifest"),
        ({"kind": "VulnerabilityManifest"}, "full_manifest"),  # neither payload nor matches
        ({"spec": {"metadata": {"withRelevancy": True}}}, "full_manifest"),
        ({"spec": "text"}, "full_manifest.spec"),
        ({"spec": {"payload": [1]}}, "full_manifest.spec.payload"),
        ({"spec": {"payload": None}}, "full_manifest.spec.payload"),
        (_matches_payload({"0": {}}), "full_manifest.spec.payload.matches"),
        (_matches_payload("none"), "full_manifest.spec.payload.matches"),
        ({"metadata": ["x"], "spec": {"payload": {"matches": []}}}, "full_manifest.metadata"),
        ({"metadata": "x", "spec": {"payload": {"matches": []}}}, "full_manifest.metadata"),
        ({"Name": "n", "Content": [1]}, "full_manifest.Content"),
        ({"Name": "n", "Content": None}, "full_manifest.Content"),
    ],
)
def test_unreadable_manifests_name_the_place(data, field):
    with pytest.raises(ValidationError) as excinfo:
        read_manifest(data, "full_manifest")
    assert field_of(excinfo) == field
    assert excinfo.value.status_code == 400
    assert excinfo.value.details["errors"][0]["code"] == "invalid"


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_that_are_not_a_list_are_named_at_the_same_place_in_every_shape(shape):
    with pytest.raises(ValidationError) as excinfo:
        read_manifest(shape({"matches": {"not": "a list"}}), "relevant_manifest")
    assert field_of(excinfo) == "relevant_manifest.spec.payload.matches"


MALFORMED = [
    "a string",
    7,
    None,
    ["a", "list"],
    {"vulnerability": {"id": "CVE-1"}},  # no artifact
    {"vulnerability": {"id": "CVE-1"}, "artifact": "openssl"},  # artifact not object
    {"vulnerability": {"id": "CVE-1"}, "artifact": {"version": "1"}},  # nameless artifact
    {"vulnerability": {"id": "CVE-1"}, "artifact": {"name": "   "}},  # blank name
    {"vulnerability": ["CVE-1"], "artifact": {"name": "openssl"}},  # vulnerability a list
    {"vulnerability": "CVE-1", "artifact": {"name": "openssl"}},
    {"vulnerability": {"id": "CVE-1"}, "artifact": {"name": "openssl", "version": "1" * 1025}},
    {  # the CycloneDX form takes its version from the purl
        "vulnerability": {"id": "CVE-1"},
        "artifact": {"name": "tar", "version": "1.0", "purl": "pkg:deb/debian/tar@" + "9" * 1025},
    },
]


@pytest.mark.parametrize("bad", MALFORMED)
def test_a_malformed_match_is_skipped_and_reported_without_losing_the_batch(bad):
    manifest = read_manifest(
        as_object({"matches": [entry("CVE-A"), bad, entry("CVE-B")]}), "full_manifest"
    )

    assert [m.vulnerability_id for m in manifest.matches] == ["CVE-A", "CVE-B"]
    [problem] = manifest.problems
    assert problem.where == "full_manifest.spec.payload.matches.1"
    assert problem.reason


def test_a_version_as_long_as_cyclonedx_allows_is_read():
    raw = entry(artifact={"name": "openssl", "version": "1" * 1024, "type": "deb"})
    assert read_match(raw).package.version == "1" * 1024


@pytest.mark.parametrize(
    "bad",
    [
        entry("CVE-B", relatedVulnerabilities=5),
        entry("CVE-B", fix={"state": "fixed", "versions": 7}),
        entry("CVE-B", fix={"state": "fixed", "versions": "2.0"}),  # would read as "2", ".", "0"
        entry("CVE-B", relatedVulnerabilities={"id": "GHSA-x"}),
    ],
)
def test_wrongly_typed_lists_inside_a_match_make_only_that_match_malformed(bad):
    """BUG: a non-list relatedVulnerabilities / fix.versions raises TypeError (batch lost)."""
    manifest = read_manifest(as_object({"matches": [entry("CVE-A"), bad]}), "full_manifest")

    assert [m.vulnerability_id for m in manifest.matches] == ["CVE-A"]
    assert [p.where for p in manifest.problems] == ["full_manifest.spec.payload.matches.1"]


@pytest.mark.parametrize(
    "vulnerability",
    [
        {},
        {"id": None},
        {"id": ""},
        {"id": "   "},
        None,
    ],
)
def test_a_missing_vulnerability_id_reads_as_unknown(vulnerability):
    raw = {"vulnerability": vulnerability, "artifact": {"name": "zlib", "purl": "pkg:deb/zlib"}}
    assert read_match(raw).vulnerability_id == UNKNOWN == "UNKNOWN"
    assert read_match(raw).key == ("UNKNOWN", "pkg:deb/zlib")


def test_aliases_come_from_related_vulnerabilities_deduped_without_the_id():
    related = [
        {"id": "CVE-2024-0001"},
        {"id": "GHSA-aaaa-bbbb-cccc"},
        {"id": "CVE-2023-9"},
        {"id": "GHSA-aaaa-bbbb-cccc"},
        {"id": ""},
        {"namespace": "nvd"},
        "CVE-X",
        None,
    ]
    match = read_match(entry("CVE-2024-0001", relatedVulnerabilities=related))
    assert match.aliases == ("CVE-2023-9", "GHSA-aaaa-bbbb-cccc")


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("Critical", "Critical"),
        ("HIGH", "High"),
        ("medium", "Medium"),
        (" Low ", "Low"),
        ("Negligible", "Negligible"),
        ("Unknown", "Unknown"),
        ("severe", "Unknown"),
        (None, "Unknown"),
        ("", "Unknown"),
    ],
)
def test_severity_is_normalised_to_grype_values(given, read):
    assert read_match(entry(severity=given)).severity == read


def test_a_given_purl_is_kept_and_a_missing_one_is_derived():
    given = read_match(
        entry(
            artifact={
                "name": "tar",
                "version": "1.29",
                "type": "deb",
                "purl": " pkg:deb/debian/tar@1.29?distro=debian-9 ",
            }
        )
    )
    derived = read_match(
        entry(artifact={"name": "busybox", "version": "1.36.1-r2", "type": "apk", "purl": ""})
    )
    assert given.package.purl == "pkg:deb/debian/tar@1.29?distro=debian-9"
    assert not given.package.purl_derived
    assert derived.package.purl == "pkg:apk/busybox@1.36.1-r2"
    assert derived.package.purl_derived


@pytest.mark.parametrize(
    ("package_type", "name", "version", "purl"),
    [
        ("apk", "busybox", "1.36.1-r2", "pkg:apk/busybox@1.36.1-r2"),
        ("deb", "login", "1:4.4-4.1", "pkg:deb/login@1%3A4.4-4.1"),
        (
            "java-archive",
            "com.google.guava/guava",
            "31.1-jre",
            "pkg:maven/com.google.guava/guava@31.1-jre",
        ),
        ("go-module", "github.com/a/b", "v1.2.3", "pkg:golang/github.com/a/b@v1.2.3"),
        ("python", "requests", "2.31.0", "pkg:pypi/requests@2.31.0"),
        ("rust_crate", "serde", "1.0.0", "pkg:cargo/serde@1.0.0"),
        ("NPM", "left pad", "1.0.0", "pkg:npm/left%20pad@1.0.0"),
        ("", "thing", "", "pkg:generic/thing"),
        ("binary type!", "x", "1", "pkg:generic/x@1"),
        # purl-spec: a type is ASCII letters, digits, '.', '+', '-' and does not start with a digit
        ("ñpm", "x", "1", "pkg:generic/x@1"),
        ("1abc", "x", "1", "pkg:generic/x@1"),
    ],
)
def test_derived_purls(package_type, name, version, purl):
    assert build_purl(package_type, name, version) == purl


def test_reading_is_pure():
    raw = load("kubevuln_nginx-cve-small.json")
    before = copy.deepcopy(raw)
    assert read_manifest(raw).matches == read_manifest(raw).matches
    assert raw == before


# -- Kubescape's own VEX --------------------------------------------------------------------

PURL = "pkg:deb/debian/openssl@3.0.11"
STATEMENT_URL = "https://kubescape.io/vex/statement/"


def vex_statement(vulnerability: Any, status: str = "not_affected") -> dict[str, Any]:
    return {
        "vulnerability": vulnerability,
        "status": status,
        "products": [
            {
                "@id": "pkg:oci/nginx@sha256:abc?repository_url=docker.io%2Flibrary",
                "subcomponents": [{"@id": PURL}],
            }
        ],
    }


def test_the_storage_vex_fixture_reads_cve_status_and_products():
    raw = load("storage_openvulnerabilityexchangecontainer_example-01.yaml")
    vex = read_kubescape_vex(raw, "kubescape_vex")

    assert vex.name == "test1"
    assert vex.document == raw["spec"]
    assert [(s.vulnerability, s.status) for s in vex.statements] == [
        (GUAVA_CVE, "affected"),
        (GUAVA_CVE, "affected"),
    ]
    image = (
        "gcr.io/google-samples/microservices-demo/adservice@sha256:"
        "45fb8ed886902c0c49e044b1f8870fad61c1022fa23c4943098302a8f1c5b75f"
    )
    assert all(s.products == [image] and s.subcomponents == [] for s in vex.statements)
    assert read_kubescape_vex(raw["spec"]).statements == vex.statements


@pytest.mark.parametrize(
    "vulnerability",
    [
        {"@id": GUAVA_CVE, "name": f"{NVD_URL}{GUAVA_CVE}"},  # released v0.3.159, first write
        {"@id": f"{NVD_URL}{GUAVA_CVE}", "name": GUAVA_CVE},  # kubevuln main and later updates
        {"@id": GUAVA_CVE},
        {"name": GUAVA_CVE},
        {"@id": GUAVA_CVE, "name": "", "aliases": ["GHSA-x"]},
    ],
    ids=["id-is-cve", "name-is-cve", "only-id", "only-name", "empty-name"],
)
def test_the_cve_is_read_from_either_kubevuln_statement_shape(vulnerability):
    spec = {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "version": 0,
        "statements": [vex_statement(vulnerability, "affected")],
    }
    for data in (spec, {"metadata": {"name": "slug"}, "spec": spec}):
        [statement] = read_kubescape_vex(data).statements
        assert statement.vulnerability == GUAVA_CVE
        assert statement.status == "affected"
        assert statement.subcomponents == [PURL]


def test_a_mixed_document_reads_every_statement():
    statements = [
        vex_statement({"@id": "CVE-2024-1", "name": "https://a/CVE-2024-1"}),
        vex_statement({"@id": "https://b/CVE-2024-2", "name": "CVE-2024-2"}),
        {
            "vulnerability": {"name": "CVE-2024-3"},
            "status": "affected",
            "products": [{"identifiers": {"purl": PURL}}],
        },
    ]
    vex = read_kubescape_vex({"spec": {"statements": statements}})
    assert [s.vulnerability for s in vex.statements] == ["CVE-2024-1", "CVE-2024-2", "CVE-2024-3"]
    assert vex.statements[2].products == [PURL]


@pytest.mark.parametrize("vulnerability", [{"@id": "", "name": ""}, {}])
def test_a_statement_without_any_vulnerability_id_reads_as_unknown(vulnerability):
    [statement] = read_kubescape_vex({"statements": [vex_statement(vulnerability)]}).statements
    assert statement.vulnerability == UNKNOWN


def test_vex_null_lists_are_empty_lists():
    statement = {
        "vulnerability": {"name": "CVE-1"},
        "status": "not_affected",
        "products": [{"@id": "pkg:oci/x", "subcomponents": None}],
    }
    assert read_kubescape_vex({"spec": {"statements": None}}).statements == []
    read = read_kubescape_vex({"statements": [statement, {**statement, "products": None}]})
    assert [(s.products, s.subcomponents) for s in read.statements] == [
        (["pkg:oci/x"], []),
        ([], []),
    ]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "kubescape_vex"),
        ("text", "kubescape_vex"),
        ({"spec": []}, "kubescape_vex.spec"),
        ({"metadata": 1, "spec": {}}, "kubescape_vex.metadata"),
        ({"statements": {"a": 1}}, "kubescape_vex.statements"),
        ({"statements": [vex_statement("CVE-1")]}, "kubescape_vex.statements.0"),
        ({"statements": [vex_statement({"name": "CVE-1"}), "x"]}, "kubescape_vex.statements.1"),
        (
            {"statements": [{**vex_statement({"name": "CVE-1"}), "products": {}}]},
            "kubescape_vex.statements.0.products",
        ),
        (
            {
                "statements": [
                    vex_statement({"name": "CVE-1"}) | {"products": [{"subcomponents": 1}]}
                ]
            },
            "kubescape_vex.statements.0.subcomponents",
        ),
    ],
)
def test_unreadable_kubescape_vex_names_the_place(data, field):
    with pytest.raises(ValidationError) as excinfo:
        read_kubescape_vex(data, "kubescape_vex")
    assert field_of(excinfo) == field


def test_wrongly_typed_identifiers_do_not_crash_the_vex_reader():
    """BUG: ``identifiers`` that is not an object raises AttributeError (a 500, not a 400)."""
    statement = {
        "vulnerability": {"name": "CVE-1"},
        "status": "affected",
        "products": [
            {"@id": "pkg:oci/a", "identifiers": ["pkg:deb/a"]},
            {"identifiers": "pkg:deb/b"},
        ],
    }
    [read] = read_kubescape_vex({"statements": [statement]}, "kubescape_vex").statements
    assert read.products[0] == "pkg:oci/a"


# -- filtered SBOM --------------------------------------------------------------------------

SYFT = {  # the Syft JSON that kubescape/storage's SBOMSyft(Filtered) objects carry
    "artifacts": [
        {
            "id": "6e97ac524b16262e",
            "name": "busybox",
            "version": "1.36.1-r2",
            "type": "apk",
            "foundBy": "apk-db-cataloger",
            "locations": [{"path": "/lib/apk/db/installed"}],
            "licenses": None,
            "language": "",
            "cpes": None,
            "purl": "pkg:apk/alpine/busybox@1.36.1-r2?arch=x86_64&distro=alpine-3.19.1",
            "metadataType": "apk-db-entry",
            "metadata": {"package": "busybox"},
        },
        {
            "id": "0f6f64aa11912270",
            "name": "musl",
            "version": "1.2.4_git20230717-r4",
            "type": "apk",
            "purl": None,
        },
        "not an artifact",
    ],
    "artifactRelationships": [
        {"parent": "6e97ac524b16262e", "child": "564026926225072e", "type": "contains"}
    ],
    "files": [
        {"id": "564026926225072e", "location": {"path": "/bin/busybox", "layerID": "sha256:7c"}},
        {"id": "aa", "location": {"path": "/lib/ld-musl-x86_64.so.1"}},
        {"id": "bb", "location": {"path": "/bin/busybox"}},
        {"id": "cc", "location": {"path": None}},
        {"id": "dd"},
        "not a file",
    ],
    "source": {"type": "image", "name": "alpine"},
    "distro": {"name": "alpine", "versionID": "3.19.1"},
    "descriptor": {"name": "syft", "version": "1.4.1"},
    "schema": {"version": "16.0.4"},
}


@pytest.mark.parametrize(
    "data",
    [
        {
            "kind": "SBOMSyftFiltered",
            "metadata": {"name": "replicaset-web-1-app-a1b2-c3d4"},
            "spec": {"metadata": {"tool": {"name": "syft"}}, "syft": SYFT},
        },
        {"metadata": {"tool": {"name": "syft"}}, "syft": SYFT},
        SYFT,
    ],
    ids=["object", "spec", "syft-json"],
)
def test_a_filtered_sbom_reads_packages_and_files(data):
    sbom = read_sbom(copy.deepcopy(data), "filtered_sbom")

    assert [(p.name, p.version, p.type) for p in sbom.packages] == [
        ("busybox", "1.36.1-r2", "apk"),
        ("musl", "1.2.4_git20230717-r4", "apk"),
    ]
    assert sbom.packages[0].purl == SYFT["artifacts"][0]["purl"]
    assert sbom.packages[1].purl == ""
    assert sbom.files == ["/bin/busybox", "/lib/ld-musl-x86_64.so.1"]  # sorted, deduped
    assert sbom.name == ("replicaset-web-1-app-a1b2-c3d4" if "spec" in data else "")


def test_sbom_null_lists_are_empty_lists():
    sbom = read_sbom(
        {"spec": {"syft": {"artifacts": None, "files": None, "artifactRelationships": None}}}
    )
    assert (sbom.packages, sbom.files) == ([], [])


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "filtered_sbom"),
        ({"spec": {"syft": None}}, "filtered_sbom"),
        ({"spec": {"syft": {"files": []}}}, "filtered_sbom"),
        ({"spec": {"metadata": {}}}, "filtered_sbom"),
        ({"spec": {"syft": {"artifacts": {"a": 1}}}}, "filtered_sbom.syft.artifacts"),
        ({"spec": {"syft": {"artifacts": [], "files": "x"}}}, "filtered_sbom.syft.files"),
    ],
)
def test_unreadable_sboms_name_the_place(data, field):
    with pytest.raises(ValidationError) as excinfo:
        read_sbom(data, "filtered_sbom")
    assert field_of(excinfo) == field


def test_a_wrongly_typed_file_location_does_not_crash_the_sbom_reader():
    """BUG: a ``location`` that is not an object raises AttributeError (a 500, not a 400)."""
    syft = {"artifacts": [], "files": [{"location": "/bin/sh"}, {"location": {"path": "/a"}}]}
    assert "/a" in read_sbom({"spec": {"syft": syft}}, "filtered_sbom").files


# -- the image's digests and the files of loaded packages ------------------------------------

INDEX, PLATFORM = "sha256:" + "1a" * 32, "sha256:" + "2b" * 32


def test_the_storage_manifest_names_its_repo_and_manifest_digests_not_the_config():
    manifest = read_manifest(load("storage_vulnerabilitymanifest_01-example.yaml"))
    assert manifest.image_digests == (
        "sha256:b8f2383a95879e1ae064940d9a200f67a6c79e710ed82ac42263397367e7cc4e",  # repoDigests
        "sha256:9f6ad1cdf02a3a6d072aa09fd5ff7e18ce0b22a90432164144197b17735fc4f0",  # manifest
    )


def test_manifest_digests_come_from_the_annotation_and_the_source_once_each():
    data = {
        "metadata": {"annotations": {"kubescape.io/image-id": f"docker.io/library/nginx@{INDEX}"}},
        "spec": {
            "payload": {
                "matches": [],
                "source": {
                    "target": {
                        "repoDigests": [f"nginx@{INDEX}", "not a digest", 7],
                        "manifestDigest": PLATFORM,
                        "imageID": "sha256:" + "3c" * 32,
                    }
                },
            }
        },
    }
    assert read_manifest(data).image_digests == (INDEX, PLATFORM)
    assert read_manifest({"spec": {"payload": {"matches": [], "source": None}}}).image_digests == ()


def test_a_packages_files_are_those_its_contains_relationships_name():
    sbom = read_sbom(copy.deepcopy(SYFT), "filtered_sbom")
    assert [p.files for p in sbom.packages] == [("/bin/busybox",), ()]
    assert sbom.files_by_package() == {
        ("busybox", "1.36.1-r2"): ("/bin/busybox",),
        ("musl", "1.2.4_git20230717-r4"): (),
    }
