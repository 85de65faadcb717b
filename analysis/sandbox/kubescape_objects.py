"""Reading Kubescape's objects for exactly one workload container.

Objects are fetched by their exact names (the instance slug, the summary name)
and accepted only when their ``kubescape.io/instance-id`` annotation is ours:
another workload's objects, whatever their names, are never read. The storage
API server applies no label selectors and namespaced watches never fire, so
this polls by name (kubescape/storage ``StorageImpl``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from analysis.image_reference import digest_of
from analysis.sandbox.client import api_client, call, get_json
from analysis.sandbox.identity import INSTANCE_ID_ANNOTATION, ContainerInstance, summary_name
from analysis.sandbox.manifests import (
    CONTAINER_PROFILES,
    KUBESCAPE_GROUP,
    KUBESCAPE_VERSION,
    OPENVEX_CONTAINERS,
    SBOM_SYFT_FILTERED,
    VULNERABILITY_MANIFEST_SUMMARIES,
    VULNERABILITY_MANIFESTS,
)

STATUS_ANNOTATION = "kubescape.io/status"
COMPLETION_ANNOTATION = "kubescape.io/completion"
CONTEXT_LABEL = "kubescape.io/context"
IMAGE_ID_ANNOTATION = "kubescape.io/image-id"
FAILED_PROFILE_STATUSES = frozenset(
    {"too-large", "failed", "incomplete", "unauthorize", "missing-runtime", "unsupported-schema"}
)


@dataclass(frozen=True)
class ProfileState:
    status: str
    completion: str
    resource_version: str


class KubescapeObjects:
    """The Kubescape objects of one container instance."""

    def __init__(
        self,
        instance: ContainerInstance,
        workload_kind: str,
        workload_name: str,
        kubescape_namespace: str,
        retry_sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.instance = instance
        self.workload_kind = workload_kind
        self.workload_name = workload_name
        self.kubescape_namespace = kubescape_namespace
        self.retry_sleep = retry_sleep

    # -- paths -------------------------------------------------------------------

    def path(self, namespace: str, plural: str, name: str) -> str:
        return f"/apis/{KUBESCAPE_GROUP}/{KUBESCAPE_VERSION}/namespaces/{namespace}/{plural}/{name}"

    @property
    def summary_name(self) -> str:
        return summary_name(self.workload_kind, self.workload_name, self.instance.container)

    def owned(self) -> list[tuple[str, str, str]]:
        """(namespace, plural, name) of every object of this instance, for cleanup.

        The full manifest is named after the image and shared by every workload of
        that image: it is never deleted here.
        """
        slug, ks, ns = self.instance.slug, self.kubescape_namespace, self.instance.namespace
        return [
            (ns, CONTAINER_PROFILES, slug),
            (ns, VULNERABILITY_MANIFEST_SUMMARIES, self.summary_name),
            (ks, VULNERABILITY_MANIFESTS, slug),
            (ks, OPENVEX_CONTAINERS, slug),
            (ks, SBOM_SYFT_FILTERED, slug),
        ]

    # -- reads -------------------------------------------------------------------

    def _get(self, namespace: str, plural: str, name: str, *, metadata_only: bool = False):
        query = [("resourceVersion", "metadata")] if metadata_only else None
        return call(
            f"read {plural}",
            get_json,
            self.path(namespace, plural, name),
            query,
            resource=f"{plural}/{name}",
            missing_ok=True,
            retry_sleep=self.retry_sleep,
        )

    def _ours(self, obj: dict[str, Any] | None) -> dict[str, Any] | None:
        if obj is None:
            return None
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        return obj if annotations.get(INSTANCE_ID_ANNOTATION) == self.instance.instance_id else None

    def profile(self) -> ProfileState | None:
        """The ContainerProfile's learning state (metadata only), or None if not there yet."""
        obj = self._ours(
            self._get(
                self.instance.namespace, CONTAINER_PROFILES, self.instance.slug, metadata_only=True
            )
        )
        if obj is None:
            return None
        metadata = obj["metadata"]
        annotations = metadata.get("annotations") or {}
        return ProfileState(
            annotations.get(STATUS_ANNOTATION, ""),
            annotations.get(COMPLETION_ANNOTATION, ""),
            str(metadata.get("resourceVersion", "")),
        )

    def relevant_manifest(self) -> dict[str, Any] | None:
        obj = self._ours(
            self._get(self.kubescape_namespace, VULNERABILITY_MANIFESTS, self.instance.slug)
        )
        if obj is None:
            return None
        labels = obj["metadata"].get("labels") or {}
        return obj if labels.get(CONTEXT_LABEL, "filtered") == "filtered" else None

    def full_manifest(self, image_id: str = "") -> dict[str, Any] | None:
        """Through the summary's reference, whose namespace field is wrong and ignored.

        The manifest is per image; when it names its image ID, that must be the pod's.
        """
        summary = self._get(
            self.instance.namespace, VULNERABILITY_MANIFEST_SUMMARIES, self.summary_name
        )
        if summary is None:
            return None
        reference = ((summary.get("spec") or {}).get("vulnerabilitiesRef") or {}).get("all") or {}
        name = reference.get("name")
        if not name:
            return None
        manifest = self._get(self.kubescape_namespace, VULNERABILITY_MANIFESTS, name)
        if manifest is None:
            return None
        annotations = (manifest.get("metadata") or {}).get("annotations") or {}
        recorded = annotations.get(IMAGE_ID_ANNOTATION)
        if image_id and recorded and not _same_image(recorded, image_id):
            return None
        return manifest

    def kubescape_vex(self) -> dict[str, Any] | None:
        return self._ours(
            self._get(self.kubescape_namespace, OPENVEX_CONTAINERS, self.instance.slug)
        )

    def filtered_sbom(self) -> dict[str, Any] | None:
        return self._ours(
            self._get(self.kubescape_namespace, SBOM_SYFT_FILTERED, self.instance.slug)
        )

    def exists(self, namespace: str, plural: str, name: str) -> bool:
        return self._get(namespace, plural, name, metadata_only=True) is not None

    def delete(self, namespace: str, plural: str, name: str) -> None:
        """Delete one object by exact name; gone already is fine. Never a collection delete."""
        custom = client.CustomObjectsApi(api_client())
        call(
            f"delete {plural}",
            custom.delete_namespaced_custom_object,
            KUBESCAPE_GROUP,
            KUBESCAPE_VERSION,
            namespace,
            plural,
            name,
            resource=f"{plural}/{name}",
            missing_ok=True,
            retry_sleep=self.retry_sleep,
        )


def _same_image(first: str, second: str) -> bool:
    """Image IDs compared by digest, whatever prefix the runtime or Kubescape put before it."""
    return (digest_of(first) or first) == (digest_of(second) or second)
