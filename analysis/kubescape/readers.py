"""Readers for what Kubescape writes: pure functions, no Django, no network.

Each accepts every shape the object is met in — the Kubernetes object, its
``spec``, or kubevuln's internal wrapper (``Content``/``Name``/``Annotations``)
— and returns plain dataclasses. ``null`` lists are empty lists. A document
that cannot be read at all raises ``ValidationError`` naming the place; a
single unreadable match is skipped and reported, so one bad entry does not
lose the rest of the batch. Input is parsed JSON or YAML, so an object is a
``dict`` (checked as such: ``isinstance(x, Mapping)`` costs several times more
on a hot path of a hundred thousand matches).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from analysis.image_reference import digest_of, unique_digests
from reliability.exceptions import ValidationError

UNKNOWN = "UNKNOWN"
IMAGE_ID_ANNOTATION = "kubescape.io/image-id"
_PURL_TYPE = re.compile(r"[a-z][a-z0-9.+-]*")  # purl-spec: ASCII, no leading digit
SEVERITIES = ("Critical", "High", "Medium", "Low", "Negligible", "Unknown")

# CycloneDX 1.6's limit on a component's version; no package's real version comes near it.
MAX_VERSION_LENGTH = 1024


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    type: str
    purl: str
    purl_derived: bool = False  # built by us: the scanner gave none


@dataclass(frozen=True)
class Match:
    vulnerability_id: str
    severity: str
    fix_state: str
    fix_versions: tuple[str, ...]
    aliases: tuple[str, ...]
    data_source: str
    description: str
    package: Package

    @property
    def key(self) -> tuple[str, str]:
        return self.vulnerability_id, self.package.purl


@dataclass(frozen=True)
class Problem:
    """One entry that was skipped, and why."""

    where: str
    reason: str


@dataclass
class Manifest:
    name: str
    annotations: dict[str, str]
    labels: dict[str, str]
    with_relevancy: bool | None
    matches: list[Match]
    problems: list[Problem] = field(default_factory=list)
    image_digests: tuple[str, ...] = ()  # of the scanned image, as Kubescape recorded them


@dataclass
class SbomPackage:
    name: str
    version: str
    type: str
    purl: str
    files: tuple[str, ...] = ()  # the package's files that the SBOM lists


@dataclass
class Sbom:
    name: str
    packages: list[SbomPackage]
    files: list[str]

    def files_by_package(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(name, version) → file paths; in a filtered SBOM, the files used at runtime."""
        found: dict[tuple[str, str], tuple[str, ...]] = {}
        for package in self.packages:
            key = (package.name, package.version)
            found[key] = tuple(sorted({*found.get(key, ()), *package.files}))
        return found


@dataclass
class KubescapeStatement:
    vulnerability: str
    status: str
    products: list[str]
    subcomponents: list[str]


@dataclass
class KubescapeVex:
    name: str
    document: dict[str, Any]
    statements: list[KubescapeStatement]


# -- manifests -----------------------------------------------------------------


def read_manifest(data: Any, where: str = "manifest") -> Manifest:
    """A VulnerabilityManifest (object, spec, or kubevuln wrapper) → ``Manifest``."""
    name, annotations, labels, spec = _unwrap(data, where)
    payload, payload_where, with_relevancy = _payload(spec, where)
    raw_matches = _list(payload.get("matches"), f"{payload_where}.matches")
    matches: list[Match] = []
    problems: list[Problem] = []
    for index, raw in enumerate(raw_matches):
        entry_where = f"{payload_where}.matches.{index}"
        try:
            matches.append(read_match(raw, entry_where))
        except _Unreadable as problem:
            problems.append(Problem(entry_where, str(problem)))
    digests = _image_digests(annotations, payload)
    return Manifest(name, annotations, labels, with_relevancy, matches, problems, digests)


def _image_digests(annotations: Mapping[str, str], payload: Mapping[str, Any]) -> tuple[str, ...]:
    """Manifest digests of the scanned image: the image-id annotation, repo and manifest digests.

    ``source.target.imageID`` is the config digest, which no scanner queries a VEX with.
    """
    source = payload.get("source") if isinstance(payload.get("source"), dict) else {}
    target = source.get("target") if isinstance(source.get("target"), dict) else {}
    repo_digests = target.get("repoDigests") if isinstance(target.get("repoDigests"), list) else []
    candidates = [annotations.get(IMAGE_ID_ANNOTATION), *repo_digests, target.get("manifestDigest")]
    return unique_digests(*(digest_of(c) for c in candidates if isinstance(c, str)))


def _unwrap(data: Any, where: str) -> tuple[str, dict, dict, Mapping[str, Any]]:
    if not isinstance(data, dict):
        raise _invalid(where, f"expected a JSON object, got {_kind(data)}")
    if "Content" in data:  # kubevuln's CVEManifest wrapper
        name = str(data.get("Name") or data.get("ID") or "")
        content = data["Content"]
        if not isinstance(content, dict):
            raise _invalid(f"{where}.Content", "expected a JSON object")
        return (
            name,
            _strings(data.get("Annotations")),
            _strings(data.get("Labels")),
            {"payload": content},
        )
    if "spec" in data:  # the Kubernetes object
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise _invalid(f"{where}.metadata", "expected a JSON object")
        spec = data["spec"]
        if not isinstance(spec, dict):
            raise _invalid(f"{where}.spec", "expected a JSON object")
        return (
            str(metadata.get("name") or ""),
            _strings(metadata.get("annotations")),
            _strings(metadata.get("labels")),
            spec,
        )
    return "", {}, {}, data


def _payload(spec: Mapping[str, Any], where: str) -> tuple[Mapping[str, Any], str, bool | None]:
    metadata = spec.get("metadata") if isinstance(spec.get("metadata"), dict) else {}
    with_relevancy = metadata.get("withRelevancy") if metadata else None
    if "payload" in spec:
        payload = spec["payload"]
        if not isinstance(payload, dict):
            raise _invalid(f"{where}.spec.payload", "expected a JSON object")
        return payload, f"{where}.spec.payload", with_relevancy
    if "matches" in spec:  # a bare Grype document
        return spec, where, with_relevancy
    raise _invalid(where, "not a vulnerability manifest: no spec.payload.matches")


def read_match(raw: Any, where: str = "match") -> Match:
    if not isinstance(raw, dict):
        raise _Unreadable(f"expected a JSON object, got {_kind(raw)}")
    vulnerability = raw.get("vulnerability") or {}
    artifact = raw.get("artifact")
    if not isinstance(vulnerability, dict):
        raise _Unreadable("vulnerability is not an object")
    if not isinstance(artifact, dict):
        raise _Unreadable("artifact is missing")
    vulnerability_id = str(vulnerability.get("id") or "").strip() or UNKNOWN
    fix = vulnerability.get("fix") if isinstance(vulnerability.get("fix"), dict) else {}
    related = raw.get("relatedVulnerabilities") or []
    versions = fix.get("versions") or []
    if not isinstance(related, list):
        raise _Unreadable("relatedVulnerabilities is not a list")
    if not isinstance(versions, list):
        raise _Unreadable("vulnerability.fix.versions is not a list")
    aliases = sorted(
        {
            str(item["id"])
            for item in related
            if isinstance(item, dict) and item.get("id") and item["id"] != vulnerability_id
        }
    )
    return Match(
        vulnerability_id=vulnerability_id,
        severity=_severity(vulnerability.get("severity")),
        fix_state=str(fix.get("state") or "unknown"),
        fix_versions=tuple(str(v) for v in versions if v),
        aliases=tuple(aliases),
        data_source=str(vulnerability.get("dataSource") or ""),
        description=str(vulnerability.get("description") or ""),
        package=read_package(artifact),
    )


def read_package(artifact: Mapping[str, Any]) -> Package:
    name = str(artifact.get("name") or "").strip()
    if not name:
        raise _Unreadable("artifact has no name")
    version = str(artifact.get("version") or "").strip()
    if len(version) > MAX_VERSION_LENGTH:
        raise _Unreadable(f"artifact.version is longer than {MAX_VERSION_LENGTH} characters")
    package_type = str(artifact.get("type") or "").strip()
    purl = str(artifact.get("purl") or "").strip()
    if purl:
        if len(_purl_version(purl)) > MAX_VERSION_LENGTH:  # the CycloneDX form's version
            raise _Unreadable(
                f"artifact.purl's version is longer than {MAX_VERSION_LENGTH} characters"
            )
        return Package(name, version, package_type, purl)
    return Package(name, version, package_type, build_purl(package_type, name, version), True)


def _purl_version(purl: str) -> str:
    """The version of a package URL, decoded; empty when it has none."""
    coordinates = purl.partition("#")[0].partition("?")[0]
    return unquote(coordinates.rpartition("@")[2]) if "@" in coordinates else ""


def build_purl(package_type: str, name: str, version: str) -> str:
    """A package URL from what the scanner knew; ``generic`` when the type is unknown."""
    purl_type = (package_type or "generic").lower().replace("_", "-")
    purl_type = {
        "java-archive": "maven",
        "go-module": "golang",
        "python": "pypi",
        "rust-crate": "cargo",
        "gem": "gem",
        "dotnet": "nuget",
    }.get(purl_type, purl_type)
    if not _PURL_TYPE.fullmatch(purl_type):
        purl_type = "generic"
    encoded = "/".join(quote(part, safe="") for part in name.split("/"))
    return f"pkg:{purl_type}/{encoded}" + (f"@{quote(version, safe='')}" if version else "")


def _severity(value: Any) -> str:
    text = str(value or "").strip().capitalize()
    return text if text in SEVERITIES else "Unknown"


# -- Kubescape's own VEX ---------------------------------------------------------


def read_kubescape_vex(data: Any, where: str = "kubescape_vex") -> KubescapeVex:
    """An OpenVulnerabilityExchangeContainer (object or spec), either kubevuln shape.

    Released kubevuln writes some statements with ``vulnerability.@id`` = the CVE
    and ``name`` = a URL; the CVE id is whichever of the two is not a URL.
    """
    name, _, _, spec = _unwrap(data, where)
    statements = _list(spec.get("statements"), f"{where}.statements")
    read: list[KubescapeStatement] = []
    for index, raw in enumerate(statements):
        place = f"{where}.statements.{index}"
        if not isinstance(raw, dict) or not isinstance(raw.get("vulnerability"), dict):
            raise _invalid(place, "a statement needs a vulnerability object")
        vulnerability = raw["vulnerability"]
        candidates = [str(vulnerability.get(k) or "") for k in ("name", "@id")]
        cve = next((c for c in candidates if c and "://" not in c), candidates[0] or UNKNOWN)
        products = [
            p for p in _list(raw.get("products"), f"{place}.products") if isinstance(p, dict)
        ]
        read.append(
            KubescapeStatement(
                vulnerability=cve,
                status=str(raw.get("status") or ""),
                products=[_component_id(p) for p in products],
                subcomponents=[
                    _component_id(s)
                    for p in products
                    for s in _list(p.get("subcomponents"), f"{place}.subcomponents")
                    if isinstance(s, dict)
                ],
            )
        )
    return KubescapeVex(name, dict(spec), read)


def _component_id(component: Mapping[str, Any]) -> str:
    identifiers = component.get("identifiers")
    if not isinstance(identifiers, dict):
        identifiers = {}
    return str(component.get("@id") or identifiers.get("purl") or "")


# -- filtered SBOM ---------------------------------------------------------------


def read_sbom(data: Any, where: str = "filtered_sbom") -> Sbom:
    """An SBOMSyft(Filtered) object or spec: Syft JSON under ``spec.syft``.

    A package's files are those its ``contains`` relationships point at.
    """
    name, _, _, spec = _unwrap(data, where)
    syft = spec.get("syft") if "syft" in spec else spec
    if not isinstance(syft, dict) or "artifacts" not in syft:
        raise _invalid(where, "not a Syft SBOM: no spec.syft.artifacts")
    paths = {
        str(f.get("id")): str(f["location"].get("path") or "")
        for f in _list(syft.get("files"), f"{where}.syft.files")
        if isinstance(f, dict) and isinstance(f.get("location"), dict)
    }
    contained: dict[str, set[str]] = {}
    for relation in _list(syft.get("artifactRelationships"), f"{where}.syft.artifactRelationships"):
        if isinstance(relation, dict) and relation.get("type") == "contains":
            path = paths.get(str(relation.get("child")))
            if path:
                contained.setdefault(str(relation.get("parent")), set()).add(path)
    packages = [
        SbomPackage(
            str(a.get("name") or ""),
            str(a.get("version") or ""),
            str(a.get("type") or ""),
            str(a.get("purl") or ""),
            tuple(sorted(contained.get(str(a.get("id")), ()))),
        )
        for a in _list(syft.get("artifacts"), f"{where}.syft.artifacts")
        if isinstance(a, dict)
    ]
    return Sbom(name, packages, sorted(set(paths.values()) - {""}))


# -- helpers -----------------------------------------------------------------------


class _Unreadable(ValueError):
    pass


def _invalid(where: str, reason: str) -> ValidationError:
    return ValidationError(
        f"Unreadable Kubescape data at {where}: {reason}.",
        errors=[{"field": where, "code": "invalid", "message": reason}],
    )


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(where, f"expected a list, got {_kind(value)}")
    return value


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )
