"""The VEX as the scanners apply it: every not_affected finding suppressed, no affected one.

Trivy and Grype cannot run here; ``tests/support/vex_consumers.py`` encodes how they
and go-vex match a statement to a finding. Each finding of a manifest pair is
queried the way each scanner queries it, and must be covered by exactly the
status the relevant manifest implies: not_affected when Kubescape did not see
the package loaded, affected when it did.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from analysis.kubescape.readers import read_manifest
from analysis.vex.builder import AFFECTED, NOT_AFFECTED, DocumentInfo, build
from tests.conftest import response_json
from tests.support.vex_consumers import (
    Image,
    Package,
    grype_queries,
    package_from_artifact,
    parse_purl,
    purl_matches,
    statuses,
    trivy_package_purl,
    trivy_queries,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
INDEX = "sha256:" + "1a" * 32  # what `docker pull nginx:1.25` records as the repo digest
PLATFORM = "sha256:" + "2b" * 32  # the amd64 manifest, the pod's imageID
NGINX = Image("docker.io/library/nginx", INDEX, tag="1.25")


@cache
def load(name: str) -> dict[str, Any]:
    text = (FIXTURES / name).read_text()
    return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)


def raw_matches(data: dict[str, Any]) -> list[dict[str, Any]]:
    return data["Content"]["matches"] if "Content" in data else data["spec"]["payload"]["matches"]


def document_for(
    full: Any,
    relevant: Any,
    image_ref: str = "nginx:1.25",
    digests: tuple[str, ...] = (INDEX, PLATFORM),
) -> dict[str, Any]:
    info = DocumentInfo(
        image_ref=image_ref,
        image_digest=digests[0],
        author="test",
        tooling="test",
        id_base="https://vexxy.test/vex",
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        document_id=UUID("00000000-0000-4000-8000-000000000001"),
        other_digests=digests[1:],
        observed_seconds=300,
    )
    result = build(
        read_manifest(full, "full_manifest"), read_manifest(relevant, "relevant_manifest"), info
    )
    return result.document


def findings(full: Any, relevant: Any) -> list[tuple[str, Package, str]]:
    """(vulnerability, package, expected status) of every match of the full manifest."""
    loaded = {
        (m["vulnerability"]["id"], m["artifact"]["name"], m["artifact"]["version"])
        for m in raw_matches(relevant)
    }
    return [
        (
            m["vulnerability"]["id"],
            package_from_artifact(m["artifact"]),
            AFFECTED
            if (m["vulnerability"]["id"], m["artifact"]["name"], m["artifact"]["version"]) in loaded
            else NOT_AFFECTED,
        )
        for m in raw_matches(full)
    ]


def assert_trivy_applies(
    document: dict[str, Any],
    pairs: list[tuple[str, Package, str]],
    image: Image,
    distro_of: dict[str, str],
) -> None:
    for vulnerability, package, expected in pairs:
        queries = trivy_queries(image, package, distro_of.get(package.type, ""))
        assert statuses(document, vulnerability, queries) == {expected}, (
            vulnerability,
            trivy_package_purl(package, distro_of.get(package.type, "")),
        )


def assert_grype_applies(
    document: dict[str, Any],
    pairs: list[tuple[str, Package, str]],
    image: Image,
    *,
    from_daemon: bool,
) -> None:
    for vulnerability, package, expected in pairs:
        queries = grype_queries(image, package, from_daemon=from_daemon)
        assert statuses(document, vulnerability, queries) == {expected}, (
            vulnerability,
            package.syft_purl,
        )


# -- the matching rules themselves ------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs", "matches"),
    [
        ("pkg:deb/debian/login@1:4.4-4.1", "pkg:deb/debian/login@1%3A4.4-4.1?arch=amd64", True),
        (
            "pkg:deb/debian/login@4.4-4.1?epoch=1",
            "pkg:deb/debian/login@4.4-4.1?arch=amd64&distro=debian-9.13&epoch=1",
            True,
        ),
        (
            "pkg:deb/debian/login@1:4.4-4.1?upstream=shadow",
            "pkg:deb/debian/login@4.4-4.1?arch=amd64&distro=debian-9&epoch=1",
            False,
        ),
        (
            "pkg:deb/debian/login@1:4.4-4.1?distro=debian-9",
            "pkg:deb/debian/login@1:4.4-4.1?distro=debian-9.13",
            False,
        ),
        ("pkg:deb/debian/login@1:4.4-4.1", "pkg:deb/debian/login@4.4-4.1?epoch=1", False),
        ("pkg:deb/debian/login", "pkg:deb/debian/login@4.4", True),
        ("pkg:deb/debian/login@4.4", "pkg:deb/debian/login", False),
        ("pkg:pypi/PyYAML@6.0", "pkg:pypi/pyyaml@6.0", True),
        ("pkg:golang/github.com/Foo/Bar@v1.0.0", "pkg:golang/github.com/foo/bar@v1.0.0", True),
        ("pkg:npm/JSONStream@1.3.5", "pkg:npm/jsonstream@1.3.5", False),
        ("pkg:oci/nginx@sha256%3Aab", "pkg:oci/nginx@sha256:ab?arch=amd64&repository_url=x", True),
        ("pkg:oci/nginx@sha256%3Aab?tag=1.25", "pkg:oci/nginx@sha256:ab?repository_url=x", False),
    ],
)
def test_purl_matching_follows_go_vex(ours, theirs, matches):
    assert purl_matches(ours, theirs) is matches


def test_the_helper_parses_like_packageurl_go():
    purl = parse_purl("pkg:DEB/Debian/Login@1%3A4.4?Arch=amd64&empty=#sub")
    assert purl is not None
    assert (purl.type, purl.namespace, purl.name, purl.version, purl.qualifiers) == (
        "deb",
        "debian",
        "login",
        "1:4.4",
        {"arch": "amd64"},
    )
    assert parse_purl("nginx:1.25") is None


def test_trivy_moves_the_epoch_to_a_qualifier_and_adds_the_distro():
    login = Package(
        "deb",
        "debian",
        "login",
        "1:4.4-4.1",
        "amd64",
        "pkg:deb/debian/login@1:4.4-4.1?arch=amd64&upstream=shadow&distro=debian-9",
    )
    assert trivy_package_purl(login, "debian-9.13") == (
        "pkg:deb/debian/login@4.4-4.1?arch=amd64&distro=debian-9.13&epoch=1"
    )


# -- the real manifest pairs ------------------------------------------------------------------

PAIRS = [
    pytest.param(
        "kubevuln_nginx-cve-small.json",
        "nginx-relevant-small.json",
        ("debian-9", "debian-9.13"),
        id="nginx",
    ),
    pytest.param(
        "storage_vulnerabilitymanifest_01-example.yaml",
        "example-relevant-manifest.json",
        ("debian-11", "debian-11.6"),
        id="storage-example",
    ),
]


@pytest.mark.parametrize(("full_name", "relevant_name", "distros"), PAIRS)
def test_trivy_suppresses_every_not_affected_finding_and_no_affected_one(
    full_name, relevant_name, distros
):
    full, relevant = load(full_name), load(relevant_name)
    document = document_for(full, relevant)
    pairs = findings(full, relevant)
    assert {expected for *_, expected in pairs} == {AFFECTED, NOT_AFFECTED}

    for distro in distros:
        for digest in (INDEX, PLATFORM):  # whichever digest the scanner recorded
            image = Image(NGINX.repository, digest, tag=NGINX.tag)
            assert_trivy_applies(document, pairs, image, {"deb": distro})


@pytest.mark.parametrize(("full_name", "relevant_name", "distros"), PAIRS)
@pytest.mark.parametrize("from_daemon", [False, True], ids=["registry", "daemon"])
def test_grype_suppresses_every_not_affected_finding_and_no_affected_one(
    full_name, relevant_name, distros, from_daemon
):
    full, relevant = load(full_name), load(relevant_name)
    document = document_for(full, relevant)
    pairs = findings(full, relevant)

    for digest in (INDEX, PLATFORM):
        image = Image(NGINX.repository, digest, tag=NGINX.tag)
        assert_grype_applies(document, pairs, image, from_daemon=from_daemon)


# -- synthetic manifests: every ecosystem ---------------------------------------------------

SYNTHETIC = [  # (type, name, version with epoch, Syft purl, Trivy distro)
    (
        "deb",
        "login",
        "1:4.8.1-1",
        "pkg:deb/debian/login@1:4.8.1-1?arch=amd64&upstream=shadow&distro=debian-12",
        "debian-12.5",
    ),
    (
        "deb",
        "libpcre3",
        "2:8.39-13",
        "pkg:deb/debian/libpcre3@2:8.39-13?arch=amd64&upstream=pcre3&distro=debian-12",
        "debian-12",
    ),
    (
        "deb",
        "bash",
        "5.2.15-2+b2",
        "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12",
        "debian-12.5",
    ),
    (
        "rpm",
        "openssl-libs",
        "1:3.0.7-27.el9",
        "pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1"
        "&upstream=openssl-3.0.7-27.el9.src.rpm&distro=rhel-9.4",
        "redhat-9.4",
    ),
    (
        "rpm",
        "bash",
        "5.1.8-9.el9",
        "pkg:rpm/redhat/bash@5.1.8-9.el9?arch=x86_64&upstream=bash-5.1.8-9.el9.src.rpm"
        "&distro=rhel-9.4",
        "redhat-9.4",
    ),
    (  # Syft's namespace is Amazon Linux's os-release ID, Trivy's its family
        "rpm",
        "openssl-libs",
        "1:1.0.2k-24.amzn2.0.7",
        "pkg:rpm/amzn/openssl-libs@1.0.2k-24.amzn2.0.7?arch=x86_64&epoch=1"
        "&upstream=openssl-1.0.2k-24.amzn2.0.7.src.rpm&distro=amzn-2",
        "amazon-2",
    ),
    (
        "rpm",
        "bash",
        "4.4-150400.27.3.2",
        "pkg:rpm/sles/bash@4.4-150400.27.3.2?arch=x86_64&distro=sles-15.5",
        "sles-15.5",
    ),
    (
        "apk",
        "musl",
        "1.2.4-r2",
        "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&upstream=musl&distro=alpine-3.18.4",
        "3.18.4",
    ),
    ("python", "PyYAML", "6.0.1", "pkg:pypi/PyYAML@6.0.1", ""),
    ("python", "typing_extensions", "4.9.0", "pkg:pypi/typing_extensions@4.9.0", ""),
    (
        "go-module",
        "github.com/Masterminds/semver/v3",
        "v3.2.1",
        "pkg:golang/github.com/Masterminds/semver/v3@v3.2.1",
        "",
    ),
    ("go-module", "stdlib", "go1.22.3", "pkg:golang/stdlib@1.22.3", ""),
    ("npm", "JSONStream", "1.3.5", "pkg:npm/JSONStream@1.3.5", ""),
    ("npm", "@babel/core", "7.23.0", "pkg:npm/%40babel/core@7.23.0", ""),
    (
        "java-archive",
        "log4j-core",
        "2.14.1",
        "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
        "",
    ),
    ("gem", "rails", "7.0.8", "pkg:gem/rails@7.0.8", ""),
    ("rust-crate", "serde", "1.0.193", "pkg:cargo/serde@1.0.193", ""),
]


def synthetic_pair() -> tuple[dict[str, Any], dict[str, Any]]:
    """Two vulnerabilities per package: the first loaded (affected), the second not."""
    matches, loaded = [], []
    for index, (kind, name, version, purl, _) in enumerate(SYNTHETIC):
        for suffix in ("1", "2"):
            match = {
                "vulnerability": {"id": f"CVE-2024-{index:03d}{suffix}", "severity": "High"},
                "artifact": {"name": name, "version": version, "type": kind, "purl": purl},
            }
            matches.append(match)
            if suffix == "1":
                loaded.append(match)
    return ({"spec": {"payload": {"matches": matches}}}, {"spec": {"payload": {"matches": loaded}}})


def test_every_ecosystem_is_applied_by_trivy_and_grype():
    full, relevant = synthetic_pair()
    document = document_for(full, relevant)
    pairs = findings(full, relevant)
    for *_, syft_purl, distro in SYNTHETIC:
        of_package = [p for p in pairs if p[1].syft_purl == syft_purl]
        assert len(of_package) == 2
        assert_trivy_applies(document, of_package, NGINX, {of_package[0][1].type: distro})
    for from_daemon in (False, True):
        assert_grype_applies(document, pairs, NGINX, from_daemon=from_daemon)


def test_a_cve_affected_in_one_package_and_not_another_is_decided_per_package():
    full = {
        "spec": {
            "payload": {
                "matches": [
                    {
                        "vulnerability": {"id": "CVE-2024-1"},
                        "artifact": {
                            "name": n,
                            "version": "1.0",
                            "type": "deb",
                            "purl": f"pkg:deb/debian/{n}@1.0?arch=amd64&distro=debian-12",
                        },
                    }
                    for n in ("libssl3", "openssl")
                ]
            }
        }
    }
    relevant = {"spec": {"payload": {"matches": full["spec"]["payload"]["matches"][:1]}}}
    document = document_for(full, relevant)

    assert [s["status"] for s in document["statements"]] == [AFFECTED, NOT_AFFECTED]
    assert_trivy_applies(document, findings(full, relevant), NGINX, {"deb": "debian-12.5"})
    assert_grype_applies(document, findings(full, relevant), NGINX, from_daemon=False)


# -- negative controls ------------------------------------------------------------------------


def test_another_images_digest_matches_nothing():
    full, relevant = load("kubevuln_nginx-cve-small.json"), load("nginx-relevant-small.json")
    document = document_for(full, relevant)
    other = Image(NGINX.repository, "sha256:" + "99" * 32, tag=NGINX.tag)

    for vulnerability, package, _ in findings(full, relevant):
        trivy = trivy_queries(other, package, "debian-9")[:1]  # the image query, not the package
        assert statuses(document, vulnerability, trivy) == set()
        assert (
            statuses(document, vulnerability, grype_queries(other, package, from_daemon=False))
            == set()
        )


def test_qualifiers_the_scanner_lacks_defeat_the_match():
    """The document as it was before: manifest purls as subcomponents, tag on the product."""
    full, relevant = load("kubevuln_nginx-cve-small.json"), load("nginx-relevant-small.json")
    document = json.loads(json.dumps(document_for(full, relevant)))  # a copy to change
    for statement in document["statements"]:
        for product in statement["products"]:
            product["@id"] = product["identifiers"]["purl"]  # with repository_url and tag
            del product["hashes"]
    pairs = findings(full, relevant)

    for vulnerability, package, _ in pairs:
        queries = trivy_queries(NGINX, package, "debian-9")[:1]
        assert statuses(document, vulnerability, queries) == set()
        assert (
            statuses(document, vulnerability, grype_queries(NGINX, package, from_daemon=False))
            == set()
        )


# -- end to end: what the API serves ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("sandbox_disabled")
def test_the_served_vex_is_applied_whichever_digest_of_the_image_was_scanned(api):
    """Submitted by one digest; the manifest names the repo and platform digests too."""
    full = load("storage_vulnerabilitymanifest_01-example.yaml")
    relevant = load("example-relevant-manifest.json")
    response = api.post(
        "/api/v1/analysis/import",
        {
            "image_ref": "nginx:1.25",
            "image_digest": INDEX,
            "full_manifest": full,
            "relevant_manifest": relevant,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    job = api.get(f"/api/v1/analysis/{response.json()['job_id']}").json()
    target = full["spec"]["payload"]["source"]["target"]
    repo_digest = target["repoDigests"][0].split("@")[1]
    assert job["image_digests"] == [INDEX, repo_digest, target["manifestDigest"]]

    document = response_json(api.get(f"/api/v1/vex/{job['generated_vex_id']}"))
    pairs = findings(full, relevant)
    for digest in job["image_digests"]:
        image = Image(NGINX.repository, digest, tag=NGINX.tag)
        assert_trivy_applies(document, pairs, image, {"deb": "debian-11.6"})
        assert_grype_applies(document, pairs, image, from_daemon=True)


# -- the README's commands --------------------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def use_the_vex_commands() -> list[str]:
    """The shell lines of the README's "Use the VEX" section, continuations joined."""
    section = README.read_text().split("\n## Use the VEX\n", 1)[1].split("\n## ", 1)[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```sh\n")[1:]]
    return [
        line
        for block in blocks
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip() and not line.startswith("#")
    ]


def scanned_image(reference: str) -> Image:
    repository, _, digest = reference.partition("@")
    assert digest.startswith("sha256:"), f"{reference}: scan by digest"
    return Image(repository, digest)


def test_the_readme_commands_are_the_ones_the_tests_model():
    commands = {line.split()[0]: line.split() for line in use_the_vex_commands()}
    assert set(commands) == {"curl", "trivy", "grype", "vexctl"}

    trivy = commands["trivy"]
    assert trivy[:4] == ["trivy", "image", "--vex", "vex.json"]
    grype = commands["grype"]
    assert grype[2:4] == ["--vex", "vex.json"]
    assert commands["vexctl"][:2] == ["vexctl", "filter"]

    # The images the README scans are queried as the model queries them, and a document for
    # that digest is applied: the README's way of scanning is the one the tests prove.
    full, relevant = load("kubevuln_nginx-cve-small.json"), load("nginx-relevant-small.json")
    for reference in (trivy[-1], grype[1]):
        image = scanned_image(reference)
        document = document_for(full, relevant, "docker.io/library/nginx:1.13", (image.digest,))
        assert_trivy_applies(document, findings(full, relevant), image, {"deb": "debian-9"})
        assert_grype_applies(document, findings(full, relevant), image, from_daemon=False)


def test_the_readme_downloads_both_formats_and_uploads_the_cyclonedx_one():
    downloads = [line for line in use_the_vex_commands() if "$API/vex/$VEX" in line]
    assert [("format=cyclonedx" in line, line.split()[-1]) for line in downloads] == [
        (False, "vex.json"),
        (True, "vex.cdx.json"),
    ]
    [upload] = [line for line in use_the_vex_commands() if "/api/v1/vex" in line]
    assert "-X POST" in upload
    for form_field in ("-F projectName=nginx", "-F projectVersion=1.25", "-F vex=@vex.cdx.json"):
        assert form_field in upload
