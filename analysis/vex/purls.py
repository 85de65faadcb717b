"""Package URLs that the scanners' VEX queries satisfy.

Trivy and Grype ask go-vex whether a statement covers a finding by comparing
the statement's purls with purls they compute themselves (``PurlMatches``):
type, namespace, name and version must be equal, and every qualifier of ours
must be in theirs with the same value. The two scanners disagree on the
qualifiers (``distro=debian-9.13`` against ``debian-9``, ``upstream`` only in
Syft's) and on where a Debian or RPM epoch goes (Syft: ``@1:4.4-4.1``; Trivy:
``@4.4-4.1?epoch=1``). So each package is written with no qualifiers, plus one
purl per other form a scanner computes:

* an epoch form ``@<version without epoch>?epoch=<N>`` for deb and rpm;
* a lowercase form for npm, whose names go-vex compares case-sensitively and
  Trivy lowercases.

Dropping ``arch`` costs one distinction: a Debian multiarch image with the
same package and version for two architectures gets one statement for both.
"""

from __future__ import annotations

import re
from functools import lru_cache

from packageurl import PackageURL

EPOCH_TYPES = frozenset({"deb", "rpm"})
_EPOCH = re.compile(r"(?P<epoch>\d+):(?P<version>.+)")


@lru_cache(maxsize=65536)
def subcomponent_purls(purl: str) -> tuple[str, ...]:
    """Every form of ``purl`` a scanner computes, unqualified first; ``(purl,)`` if unparsable."""
    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return (purl,)
    plain = PackageURL(parsed.type, parsed.namespace, parsed.name, parsed.version)
    forms = [plain, *_epoch_forms(parsed), *_lowercase_forms(plain)]
    unique = dict.fromkeys(form.to_string() for form in forms)
    return tuple(unique)


def _epoch_forms(parsed: PackageURL) -> list[PackageURL]:
    """``@1:4.4-4.1`` and ``@4.4-4.1?epoch=1``, whichever of the two the input had."""
    if parsed.type not in EPOCH_TYPES or not parsed.version:
        return []
    match = _EPOCH.fullmatch(parsed.version)
    qualifier = (parsed.qualifiers or {}).get("epoch")
    if match:
        epoch, version = match["epoch"], match["version"]
    elif qualifier and qualifier.isdigit():
        epoch, version = qualifier, parsed.version
    else:
        return []
    split = PackageURL(
        parsed.type,
        parsed.namespace,
        parsed.name,
        version,
        qualifiers={"epoch": epoch} if int(epoch) else None,
    )
    joined = PackageURL(parsed.type, parsed.namespace, parsed.name, f"{epoch}:{version}")
    return [joined, split]


def _lowercase_forms(plain: PackageURL) -> list[PackageURL]:
    if plain.type != "npm":
        return []
    return [
        PackageURL(
            plain.type,
            plain.namespace and plain.namespace.lower(),
            plain.name.lower(),
            plain.version,
        )
    ]


def oci_purl(name: str, digest: str, qualifiers: dict[str, str] | None = None) -> str:
    """``pkg:oci/<name>@sha256%3A<hex>``: the form both scanners match when unqualified.

    packageurl-python leaves ``:`` in a version as is; go-vex decodes either
    spelling, and ``%3A`` is the one the purl specification's OCI examples use.
    """
    text = PackageURL("oci", None, name.lower(), digest, qualifiers=qualifiers).to_string()
    return text.replace(f"@{digest}", f"@{digest.replace(':', '%3A')}", 1)
