"""How go-vex, Trivy and Grype decide that an OpenVEX statement covers a finding.

Neither scanner runs here, so their matching is encoded from the rules read in
their source (go-vex v0.2.7/v0.2.8 ``pkg/vex``; packageurl-go v0.1.6
``FromString``; Trivy v0.74 ``pkg/purl``; Grype ``grype/vex/openvex`` with
Syft purls). The purl parser is written here, not taken from
packageurl-python, so that the service's purls are checked by an independent
reading of the same strings, with packageurl-go's normalisation and no other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

# packageurl-go v0.1.6 typeAdjustName / typeAdjustNamespace
_LOWER_NAME = frozenset(
    {
        "alpm",
        "apk",
        "bitbucket",
        "bitnami",
        "chrome-extension",
        "composer",
        "deb",
        "github",
        "golang",
    }
)
_LOWER_NAMESPACE = frozenset(
    {"alpm", "apk", "bitbucket", "composer", "deb", "github", "golang", "rpm", "qpkg"}
)


@dataclass(frozen=True)
class Purl:
    type: str
    namespace: str
    name: str
    version: str
    qualifiers: dict[str, str]


def parse_purl(text: str) -> Purl | None:
    """packageurl-go ``FromString``: decoded parts, lowercased type and keys, type rules."""
    if not text.startswith("pkg:"):
        return None
    rest = text[4:].lstrip("/").partition("#")[0]
    rest, _, query = rest.partition("?")
    purl_type, _, path = rest.partition("/")
    if not purl_type or not path:
        return None
    version = ""
    if "@" in path:
        path, _, version = path.rpartition("@")
    segments = [unquote(segment) for segment in path.strip("/").split("/")]
    name, namespace = segments[-1], "/".join(segments[:-1])
    purl_type = purl_type.lower()
    if purl_type in _LOWER_NAME:
        name = name.lower()
    if purl_type in _LOWER_NAMESPACE:
        namespace = namespace.lower()
    if purl_type == "pypi":
        name = name.lower().replace("_", "-")
    qualifiers = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        if value:
            qualifiers[key.lower()] = unquote(value)
    return Purl(purl_type, namespace, name, unquote(version), qualifiers)


def purl_matches(ours: str, theirs: str) -> bool:
    """go-vex ``PurlMatches``: same coordinates, and every qualifier of ours present in theirs."""
    p1, p2 = parse_purl(ours), parse_purl(theirs)
    if p1 is None or p2 is None:
        return False
    if (p1.type, p1.namespace, p1.name) != (p2.type, p2.namespace, p2.name):
        return False
    if p1.version and (not p2.version or p1.version != p2.version):
        return False
    return all(p2.qualifiers.get(key) == value for key, value in p1.qualifiers.items())


def component_matches(component: dict[str, Any], identifier: str) -> bool:
    """go-vex ``Component.Matches``: purl @id, identifiers, or a hash value."""
    own_id = component.get("@id", "")
    if (
        own_id.startswith("pkg:")
        and identifier.startswith("pkg:")
        and purl_matches(own_id, identifier)
    ):
        return True
    for kind, value in (component.get("identifiers") or {}).items():
        if value == identifier or (
            kind == "purl" and identifier.startswith("pkg:") and purl_matches(value, identifier)
        ):
            return True
    return identifier in (component.get("hashes") or {}).values()


def statement_matches(
    statement: dict[str, Any], vulnerability: str, product: str, subcomponent: str | None
) -> bool:
    """go-vex ``Statement.Matches``: the vulnerability, a product, and one of its subcomponents."""
    names = {statement["vulnerability"]["name"], *statement["vulnerability"].get("aliases", [])}
    if vulnerability not in names:
        return False
    for candidate in statement.get("products", []):
        if not component_matches(candidate, product):
            continue
        subcomponents = candidate.get("subcomponents") or []
        if not subcomponents or subcomponent is None:
            return True
        if any(component_matches(s, subcomponent) for s in subcomponents):
            return True
    return False


def statuses(
    document: dict[str, Any], vulnerability: str, queries: Iterable[tuple[str, str | None]]
) -> set[str]:
    """Statuses of every statement that any (product, subcomponent) query matches."""
    found = set()
    for statement in document["statements"]:
        if any(
            statement_matches(statement, vulnerability, product, sub) for product, sub in queries
        ):
            found.add(statement["status"])
    return found


# -- what the scanners compute --------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """The image as the scanner pulled it: repository (``docker.io/library/nginx``), digest, tag."""

    repository: str
    digest: str
    tag: str = "latest"
    arch: str = "amd64"

    @property
    def docker_hub_normalised(self) -> str:
        registry, _, path = self.repository.partition("/")
        return f"index.docker.io/{path}" if registry == "docker.io" else self.repository

    @property
    def name(self) -> str:
        return self.repository.rsplit("/", 1)[-1].lower()


@dataclass(frozen=True)
class Package:
    """A finding's package as the manifest (Syft) gives it."""

    type: str
    namespace: str
    name: str
    version: str  # with the epoch, ``1:4.4-4.1``, as Syft and Grype report it
    arch: str
    syft_purl: str


def package_from_artifact(artifact: dict[str, Any]) -> Package:
    purl = parse_purl(artifact["purl"])
    assert purl is not None, artifact["purl"]
    return Package(
        purl.type,
        purl.namespace,
        purl.name,
        artifact["version"],
        purl.qualifiers.get("arch", ""),
        artifact["purl"],
    )


def trivy_image_purl(image: Image) -> str:
    """``pkg:oci/<name>@sha256:<hex>?arch=…&repository_url=…``, from RepoDigests[0]; no tag."""
    return (
        f"pkg:oci/{image.name}@{image.digest}?arch={image.arch}"
        f"&repository_url={image.docker_hub_normalised}"
    )


def trivy_os_namespace(family: str) -> str:
    """Trivy ``pkg/fanal/types`` ``OSType.PurlNamespace``: the OS family, SUSE's grouped."""
    if family in {"sles", "slem"}:
        return "suse"
    if family in {"opensuse-leap", "opensuse-tumbleweed"}:
        return "opensuse"
    return family


def trivy_package_purl(package: Package, distro: str) -> str:
    """Trivy ``pkg/purl``: the epoch moves to a qualifier; OS packages carry ``distro``.

    ``distro`` is Trivy's ``<family>-<release>`` for deb and rpm (the family names the
    namespace, not Syft's os-release ID: ``amazon``, not ``amzn``) and the release for apk.
    Go's standard library gets Trivy's ``v`` before its version (``go1.22.3`` -> ``v1.22.3``;
    Trivy ``pkg/dependency/parser/golang/binary``).
    """
    epoch, _, version = package.version.rpartition(":")
    qualifiers = {}
    if package.arch:
        qualifiers["arch"] = package.arch
    if epoch and epoch != "0":
        qualifiers["epoch"] = epoch
    name, namespace = package.name, package.namespace
    if package.type in {"deb", "rpm", "apk"}:
        qualifiers["distro"] = distro
        if package.type in {"deb", "rpm"}:
            namespace = trivy_os_namespace(distro.rpartition("-")[0])
    elif package.type in {"golang", "npm"}:
        name, namespace = name.lower(), namespace.lower()
    elif package.type == "pypi":
        name = name.lower().replace("_", "-")
    if package.type == "golang" and (namespace, name) == ("", "stdlib"):
        version = "v" + version.removeprefix("go").partition(" ")[0]
    query = "&".join(f"{k}={v}" for k, v in sorted(qualifiers.items()))
    path = f"{namespace}/{name}" if namespace else name
    return f"pkg:{package.type}/{path}@{version}" + (f"?{query}" if query else "")


def trivy_queries(image: Image, package: Package, distro: str) -> list[tuple[str, str | None]]:
    """Trivy asks with the image purl and the package purl, and with the package purl alone."""
    package_purl = trivy_package_purl(package, distro)
    return [(trivy_image_purl(image), package_purl), (package_purl, None)]


def grype_product_ids(image: Image, *, from_daemon: bool) -> list[str]:
    """Grype's product identifiers for an image, in the order it tries them."""
    registry_path = image.docker_hub_normalised
    tag = f"{image.repository}:{image.tag}" if from_daemon else f"{image.name}:{image.tag}"
    hex_digest = image.digest.removeprefix("sha256:")
    return [
        tag,
        f"pkg:oci/{image.name if not from_daemon else image.repository}?tag={image.tag}",
        f"{registry_path}@{image.digest}",
        f"pkg:oci/{image.name}@{image.digest.replace(':', '%3A')}"
        f"?repository_url={registry_path.rsplit('/', 1)[0]}",
        hex_digest,
    ]


def grype_queries(
    image: Image, package: Package, *, from_daemon: bool
) -> list[tuple[str, str | None]]:
    return [
        (product, package.syft_purl)
        for product in grype_product_ids(image, from_daemon=from_daemon)
    ]
