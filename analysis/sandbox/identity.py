"""How Kubescape names the objects of one workload container (as kubescape/k8s-interface does).

The instance ID is built from the pod's first owner (the ReplicaSet of a
Deployment pod); the instance slug is the name Kubescape gives that
container's ContainerProfile, relevant VulnerabilityManifest, filtered SBOM
and relevancy VEX. Objects are looked up by these exact names and then
verified by their ``kubescape.io/instance-id`` annotation; names are never
matched by substring.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

SLUG_MAX_LENGTH = 243
INSTANCE_ID_ANNOTATION = "kubescape.io/instance-id"
_INSTANCE_ID = re.compile(r"apiVersion-(.+)/namespace-(.+)/kind-(.+)/name-(.+)/containerName-(.+)")


@dataclass(frozen=True)
class ContainerInstance:
    api_version: str
    namespace: str
    kind: str
    name: str
    container: str

    @classmethod
    def from_instance_id(cls, value: str) -> ContainerInstance | None:
        """The instance an ID names, or None if it is not a container instance ID."""
        match = _INSTANCE_ID.fullmatch(value)
        return cls(*match.groups()) if match else None

    @property
    def instance_id(self) -> str:
        return (
            f"apiVersion-{self.api_version}/namespace-{self.namespace}/kind-{self.kind}"
            f"/name-{self.name}/containerName-{self.container}"
        )

    @property
    def slug(self) -> str:
        return instance_slug(self.kind, self.name, self.container, self.instance_id)


def instance_slug(kind: str, owner_name: str, container: str, instance_id: str) -> str:
    """k8s-interface ``GetSlug(false)``: ``<kind>-<owner>-<container>-<h[:4]>-<h[-4:]>``."""
    digest = hashlib.sha256(instance_id.encode()).hexdigest()
    suffix = f"-{digest[:4]}-{digest[-4:]}"
    slug = f"{kind}-{owner_name}-{container}{suffix}".lower()
    if len(slug) >= SLUG_MAX_LENGTH:
        slug = slug[:SLUG_MAX_LENGTH] + suffix
    return slug


def summary_name(workload_kind: str, workload_name: str, container: str) -> str:
    """The VulnerabilityManifestSummary of a workload container: ``<kind>-<name>-<container>``."""
    return f"{workload_kind}-{workload_name}-{container}".lower()


def image_slug(normalized_reference: str, image_id: str) -> str:
    """k8s-interface ``ImageInfoToSlug``: the full manifest's name, shared by the image's users."""
    slug = normalized_reference
    for old in ("://", ":", "/", "_", "@"):
        slug = slug.replace(old, "-")
    return f"{slug}-{image_id[-6:]}".lower()
