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
* for npm, the name as written and all lowercase: go-vex compares npm names
  case-sensitively and Trivy lowercases them.

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
    """Every form of ``purl`` a scanner computes, unqualified first; ``(purl,)`` if unparsable.

    The first form names the package exactly (an epoch stays in its version),
    so it also serves as the package's key.
    """
    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return (purl,)
    # ``_replace`` keeps the parsed, already normalised parts; ``to_string`` normalises once more.
    forms = _epoch_forms(parsed) or [parsed._replace(qualifiers=None, subpath=None)]
    texts = [form.to_string() for form in forms] + _npm_forms(purl, forms[0])
    return tuple(dict.fromkeys(texts))


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
    joined = parsed._replace(version=f"{epoch}:{version}", qualifiers=None, subpath=None)
    qualifiers = {"epoch": epoch} if int(epoch) else None  # Trivy writes no epoch=0
    return [joined, joined._replace(version=version, qualifiers=qualifiers)]


def _npm_forms(purl: str, exact: PackageURL) -> list[str]:
    """npm names as written (go-vex compares them case-sensitively) and all lowercase (Trivy).

    packageurl-python lowercases npm names itself, so the written form is the
    input without its qualifiers and subpath.
    """
    if exact.type != "npm":
        return []
    lowercase = PackageURL(
        "npm", exact.namespace and exact.namespace.lower(), exact.name.lower(), exact.version
    )
    return [lowercase.to_string(), purl.partition("#")[0].partition("?")[0]]


def oci_purl(name: str, digest: str, qualifiers: dict[str, str] | None = None) -> str:
    """``pkg:oci/<name>@sha256%3A<hex>``: the form both scanners match when unqualified.

    packageurl-python leaves ``:`` in a version as is; go-vex decodes either
    spelling, and ``%3A`` is the one the purl specification's OCI examples use.
    """
    text = PackageURL("oci", None, name.lower(), digest, qualifiers=qualifiers).to_string()
    return text.replace(f"@{digest}", f"@{digest.replace(':', '%3A')}", 1)
