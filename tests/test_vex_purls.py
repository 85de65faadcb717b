"""Package and image purls as the VEX writes them."""

from __future__ import annotations

import pytest

from analysis.vex.purls import oci_purl, subcomponent_purls

HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("purl", "forms"),
    [
        (
            "pkg:deb/debian/login@1:4.4-4.1?arch=amd64&upstream=shadow&distro=debian-9",
            ("pkg:deb/debian/login@1:4.4-4.1", "pkg:deb/debian/login@4.4-4.1?epoch=1"),
        ),
        (
            "pkg:deb/debian/tar@1.29b-1.1?arch=amd64&distro=debian-9",
            ("pkg:deb/debian/tar@1.29b-1.1",),
        ),
        ("pkg:deb/debian/x@0:1.0", ("pkg:deb/debian/x@0:1.0", "pkg:deb/debian/x@1.0")),
        (
            "pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1&distro=rhel-9.4",
            (
                "pkg:rpm/redhat/openssl-libs@1:3.0.7-27.el9",
                "pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?epoch=1",
            ),
        ),
        (
            "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&upstream=musl&distro=alpine-3.18.4",
            ("pkg:apk/alpine/musl@1.2.4-r2",),
        ),
        ("pkg:apk/alpine/musl@1:1.2", ("pkg:apk/alpine/musl@1:1.2",)),  # no epoch in apk
        ("pkg:pypi/PyYAML@6.0.1", ("pkg:pypi/pyyaml@6.0.1",)),
        (
            "pkg:golang/github.com/Masterminds/semver/v3@v3.2.1",
            ("pkg:golang/github.com/Masterminds/semver/v3@v3.2.1",),
        ),
        (
            "pkg:npm/%40Babel/Core@7.0.0?x=1#sub",
            ("pkg:npm/%40babel/core@7.0.0", "pkg:npm/%40Babel/Core@7.0.0"),
        ),
        ("pkg:npm/lodash@4.17.21", ("pkg:npm/lodash@4.17.21",)),
        (
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1?type=jar",
            ("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",),
        ),
        ("pkg:deb/debian/bash@5.2.15-2%2Bb2", ("pkg:deb/debian/bash@5.2.15-2%2Bb2",)),
        (  # Syft names Amazon Linux by its os-release ID, Trivy by its family
            "pkg:rpm/amzn/openssl-libs@1.0.2k-24.amzn2.0.7?arch=x86_64&epoch=1&distro=amzn-2",
            (
                "pkg:rpm/amzn/openssl-libs@1:1.0.2k-24.amzn2.0.7",
                "pkg:rpm/amzn/openssl-libs@1.0.2k-24.amzn2.0.7?epoch=1",
                "pkg:rpm/amazon/openssl-libs@1:1.0.2k-24.amzn2.0.7",
                "pkg:rpm/amazon/openssl-libs@1.0.2k-24.amzn2.0.7?epoch=1",
            ),
        ),
        (
            "pkg:rpm/sles/bash@4.4-150400.27.3.2?arch=x86_64&distro=sles-15.5",
            ("pkg:rpm/sles/bash@4.4-150400.27.3.2", "pkg:rpm/suse/bash@4.4-150400.27.3.2"),
        ),
        ("pkg:rpm/rocky/bash@5.1.8-6.el9_1", ("pkg:rpm/rocky/bash@5.1.8-6.el9_1",)),
        ("pkg:golang/stdlib@1.22.3", ("pkg:golang/stdlib@1.22.3", "pkg:golang/stdlib@v1.22.3")),
        ("pkg:golang/stdlib@go1.21.0", ("pkg:golang/stdlib@go1.21.0", "pkg:golang/stdlib@v1.21.0")),
        ("pkg:golang/stdlib@v1.22.3", ("pkg:golang/stdlib@v1.22.3",)),
        ("pkg:golang/example.com/stdlib@1.0.0", ("pkg:golang/example.com/stdlib@1.0.0",)),
        ("not a purl", ("not a purl",)),
    ],
)
def test_subcomponent_forms(purl, forms):
    assert subcomponent_purls(purl) == forms


@pytest.mark.parametrize(
    ("name", "qualifiers", "expected"),
    [
        ("nginx", None, f"pkg:oci/nginx@sha256%3A{HEX}"),
        ("Nginx", None, f"pkg:oci/nginx@sha256%3A{HEX}"),
        (
            "app",
            {"repository_url": "localhost:5000/app", "tag": "v1"},
            f"pkg:oci/app@sha256%3A{HEX}?repository_url=localhost:5000/app&tag=v1",
        ),
    ],
)
def test_oci_purl(name, qualifiers, expected):
    assert oci_purl(name, f"sha256:{HEX}", qualifiers) == expected
