"""Package URLs that the scanners' VEX queries satisfy.

Trivy and Grype ask go-vex whether a statement covers a finding by comparing
the statement's purls with purls they compute themselves (``PurlMatches``):
type, namespace, name and version must be equal, and every qualifier of ours
must be in theirs with the same value. The two scanners disagree on the
qualifiers (``distro=debian-9.13`` against ``debian-9``, ``upstream`` only in
Syft's) and on where an epoch goes (Syft writes a Debian epoch into the version,
``@1:4.4-4.1``, and an RPM epoch as ``?epoch=1``; Trivy always writes
``@4.4-4.1?epoch=1``). So each package is written with no qualifiers, plus one
purl per other form a scanner computes:

* for deb and rpm with an epoch, both ``@1:4.4-4.1`` and ``@4.4-4.1?epoch=1``;
* for npm, the name all lowercase (Trivy) and as written: go-vex compares npm
  names case-sensitively;
* for rpm, Trivy's namespace as well where it differs from Syft's: Syft writes the
  os-release ID (``amzn``, ``ol``, ``almalinux``, ``mariner``, ``sles``), Trivy its OS
  family's purl namespace (``amazon``, ``oracle``, ``alma``, ``cbl-mariner``, ``suse``;
  Trivy ``pkg/fanal/types`` ``OSType.PurlNamespace``);
* for Go's standard library, Trivy's version as well: Syft writes
  ``pkg:golang/stdlib@1.22.3``, Trivy ``@v1.22.3`` ("the ``v`` prefix to be consistent
  with module versions", Trivy ``pkg/dependency/parser/golang/binary``).

Dropping ``arch`` costs one distinction: a Debian multiarch image with the
same package and version for two architectures gets one statement for both.
"""

from __future__ import annotations

import re
from functools import lru_cache

from packageurl import PackageURL

EPOCH_TYPES = frozenset({"deb", "rpm"})
_EPOCH = re.compile(r"(?P<epoch>\d+):(?P<version>.+)")
# Syft's rpm namespace (the os-release ID; it already maps rhel to redhat) -> Trivy's.
TRIVY_RPM_NAMESPACES = {
    "rhel": "redhat",
    "amzn": "amazon",
    "ol": "oracle",
    "almalinux": "alma",
    "mariner": "cbl-mariner",
    "sles": "suse",
    "sle-micro": "suse",
    "sl-micro": "suse",
    "opensuse-leap": "opensuse",
    "opensuse-tumbleweed": "opensuse",
}


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
    if parsed.type == "npm":
        return _npm_forms(purl, parsed)
    # ``_replace`` keeps the parsed, already normalised parts; ``to_string`` normalises once more.
    forms = _epoch_forms(parsed) or [parsed._replace(qualifiers=None, subpath=None)]
    forms += _trivy_forms(forms)
    return tuple(dict.fromkeys(form.to_string() for form in forms))


def _trivy_forms(forms: list[PackageURL]) -> list[PackageURL]:
    """The same package as Trivy names it, where Trivy's rpm namespace or stdlib version differ."""
    first = forms[0]
    if first.type == "rpm" and first.namespace in TRIVY_RPM_NAMESPACES:
        namespace = TRIVY_RPM_NAMESPACES[first.namespace]
        return [form._replace(namespace=namespace) for form in forms]
    if first.type == "golang" and not first.namespace and first.name == "stdlib":
        version = (first.version or "").removeprefix("go").partition(" ")[0]
        if version and not version.startswith("v"):
            return [first._replace(version=f"v{version}")]
    return []


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


def _npm_forms(purl: str, parsed: PackageURL) -> tuple[str, ...]:
    """All lowercase, then as written without qualifiers and subpath.

    packageurl-python lowercases an npm name but not its scope, a mix that no
    scanner computes; so the lowercase form is made here and the written one is
    the input's own text.
    """
    namespace = parsed.namespace and parsed.namespace.lower()
    lowercase = PackageURL("npm", namespace, parsed.name.lower(), parsed.version).to_string()
    return tuple(dict.fromkeys([lowercase, purl.partition("#")[0].partition("?")[0]]))


def oci_purl(name: str, digest: str, qualifiers: dict[str, str] | None = None) -> str:
    """``pkg:oci/<name>@sha256%3A<hex>``: the form both scanners match when unqualified.

    packageurl-python leaves ``:`` in a version as is; go-vex decodes either
    spelling, and ``%3A`` is the one the purl specification's OCI examples use.
    """
    text = PackageURL("oci", None, name.lower(), digest, qualifiers=qualifiers).to_string()
    return text.replace(f"@{digest}", f"@{digest.replace(':', '%3A')}", 1)
