"""A scenario driver for the sandbox pipeline: the cluster's controllers and Kubescape, played
over the Kubernetes API double (tests/support/kube_api.py), and a fake clock that drives them.

The pipeline sleeps between polls. :class:`FakeClock` (the interface of
``analysis.sandbox.pipeline.Clock``) advances fake time on each sleep and then lets the world take
the next step of its plan, so a scenario unfolds deterministically and nothing really waits. A step
that cannot happen yet returns False and is tried again at the next sleep (the ReplicaSet and
its pod appear only once the Deployment exists). Retry back-offs go through the same clock.

What the world writes is placed and named as Kubescape does: ContainerProfile and summary in the
sandbox namespace, relevant and full VulnerabilityManifests in Kubescape's namespace, names from
``analysis.sandbox.identity``, identity in the ``kubescape.io/instance-id`` annotation.

kmock gap worked around here, at the HTTP level: it answers ``GET .../pods/<name>/log`` with the
pod object as JSON; :meth:`SandboxWorld.serve_log` answers that URL with plain text instead.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kmock
from django.conf import settings
from django.db.models.signals import post_save

from analysis.models import AnalysisEvidence
from analysis.sandbox.identity import ContainerInstance, image_slug, summary_name
from analysis.sandbox.manifests import CONTAINER_NAME, JOB_LABEL, sandbox_name
from tests.support.kube_api import KubeApiServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FULL_CONTENT = json.loads((FIXTURES / "kubevuln_nginx-cve-small.json").read_text())["Content"]
RELEVANT_CONTENT = json.loads((FIXTURES / "nginx-relevant-small.json").read_text())["Content"]
IMAGE_REF = "docker.io/library/nginx:1.25"
IMAGE_DIGEST = "sha256:32fdf92b4e986e109e4db0865758020cb0c3b70d6ba80d02fe87bad5cc3dc228"
IMAGE_ID = f"docker.io/library/nginx@{IMAGE_DIGEST}"

DEPLOYMENTS, REPLICASETS, PODS = "apps/v1/deployments", "apps/v1/replicasets", "v1/pods"
SERVICES, NETWORK_POLICIES = "v1/services", "networking.k8s.io/v1/networkpolicies"
_KS = "spdx.softwarecomposition.kubescape.io/v1beta1/"
PROFILES, SUMMARIES = _KS + "containerprofiles", _KS + "vulnerabilitymanifestsummaries"
MANIFESTS, VEXES = _KS + "vulnerabilitymanifests", _KS + "openvulnerabilityexchangecontainers"
FILTERED_SBOMS = _KS + "sbomsyftfiltereds"
SBOMS, APPLICATION_PROFILES = _KS + "sbomsyfts", _KS + "applicationprofiles"
NETWORK_NEIGHBORHOODS = _KS + "networkneighborhoods"

INSTANCE_ID = "kubescape.io/instance-id"
TEMPLATE_HASH = "7c5ddbdf54"

Step = Callable[[], object]


class FakeClock:
    """``monotonic()`` is fake time; ``sleep(s)`` advances it, then runs ``on_sleep``."""

    def __init__(self, on_sleep: Callable[[], None] | None = None) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()


class SandboxWorld:
    """One job's corner of the cluster; ``plan`` holds what happens next, one step per sleep."""

    def __init__(self, kube: KubeApiServer, job: Any) -> None:
        self.kube, self.job = kube, job
        self.ns, self.ks = settings.K8S_SANDBOX_NAMESPACE, settings.KUBESCAPE_NAMESPACE
        self.name = sandbox_name(job.pk)
        self.rs_name = f"{self.name}-{TEMPLATE_HASH}"
        self.pod_name = f"{self.rs_name}-x2v9q"
        self.instance = ContainerInstance(
            "apps/v1", self.ns, "ReplicaSet", self.rs_name, CONTAINER_NAME
        )
        self.slug = self.instance.slug
        self.summary = summary_name("deployment", self.name, CONTAINER_NAME)
        self.image_slug = image_slug(IMAGE_REF, IMAGE_ID)
        self.wlid = f"wlid://cluster-test/namespace-{self.ns}/deployment-{self.name}"
        self.plan: list[Step] = []
        self.published = False  # the image's full manifest exists (and must outlive the job)
        self.clock = FakeClock(self.step)

    # -- driving -----------------------------------------------------------------------

    def script(self, *steps: Step) -> SandboxWorld:
        self.plan = list(steps)
        return self

    def step(self) -> None:
        if self.plan and self.plan[0]() is not False:
            self.plan.pop(0)

    def happy(self) -> tuple[Step, ...]:
        """Pod up; profile learning (an early partial scan); completed; the final scan."""
        return self.start_pod, self.learning, self.completed, self.publish

    def preseed(self) -> None:
        """Everything at once, for the task path (real clock): no poll has to wait."""
        self.start_pod(wait_for_deployment=False)
        self.completed()
        self.publish()

    # -- controllers and kubelet ---------------------------------------------------------

    def start_pod(self, waiting: str | None = None, *, wait_for_deployment: bool = True) -> bool:
        """The Deployment's ReplicaSet and pod: Ready, or stuck ``waiting`` for a reason."""
        deployment = self.kube.get(DEPLOYMENTS, self.name, self.ns)
        if deployment is None and wait_for_deployment:
            return False
        template = copy.deepcopy(
            (deployment or {}).get("spec", {}).get("template")
            or {
                "metadata": {"labels": {JOB_LABEL: str(self.job.pk)}},
                "spec": {"containers": [{"name": CONTAINER_NAME, "image": IMAGE_ID}]},
            }
        )
        labels = {**template["metadata"]["labels"], "pod-template-hash": TEMPLATE_HASH}
        replicaset = self.kube.put(
            REPLICASETS,
            {
                "metadata": {
                    "name": self.rs_name,
                    "namespace": self.ns,
                    "labels": labels,
                    "ownerReferences": [_owner("Deployment", self.name, deployment)],
                },
                "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
            },
        )
        self.kube.put(
            PODS,
            _with_status(
                {
                    "metadata": {
                        "name": self.pod_name,
                        "namespace": self.ns,
                        "labels": labels,
                        "ownerReferences": [_owner("ReplicaSet", self.rs_name, replicaset)],
                    },
                    "spec": template["spec"],
                },
                waiting,
            ),
        )
        return True

    def serve_log(self, text: str) -> None:
        """Plain text for the pod's log URL (kmock would answer the pod as JSON)."""
        path = f"/api/v1/namespaces/{self.ns}/pods/{self.pod_name}/log"

        async def react(emulator: Any) -> None:
            text_plain = kmock.headers({"Content-Type": "text/plain"})  # else the client refuses
            emulator[kmock.method.GET, kmock.path(path)] << text_plain << text.encode()

        self.kube.react(react)

    # -- Kubescape --------------------------------------------------------------------

    def learning(self) -> None:
        """The profile is learning and an early (partial) scan already wrote a manifest."""
        self.profile("ready")
        self.relevant({**RELEVANT_CONTENT, "matches": []})

    def completed(self) -> None:
        self.profile("completed")

    def publish(self) -> None:
        """The final relevancy scan: relevant manifest, summary, and the image's full manifest."""
        self.published = True
        self.relevant(RELEVANT_CONTENT)
        self.kube.put(
            SUMMARIES,
            {
                "metadata": {
                    "name": self.summary,
                    "namespace": self.ns,
                    "labels": self.workload_labels("deployment"),
                    "annotations": {"kubescape.io/wlid": self.wlid},
                },
                # The namespace kubevuln writes here is the workload's, not where manifests live.
                "spec": {
                    "vulnerabilitiesRef": {
                        "all": {
                            "kind": "VulnerabilityManifest",
                            "name": self.image_slug,
                            "namespace": self.ns,
                        },
                        "relevant": {
                            "kind": "VulnerabilityManifest",
                            "name": self.slug,
                            "namespace": self.ns,
                        },
                    }
                },
            },
        )
        self.full()

    def profile(
        self, status: str, *, name: str | None = None, instance_id: str | None = None
    ) -> None:
        self.kube.put(
            PROFILES,
            {
                "metadata": {
                    "name": name or self.slug,
                    "namespace": self.ns,
                    "labels": self.workload_labels("Deployment"),
                    "annotations": {
                        INSTANCE_ID: instance_id or self.instance.instance_id,
                        "kubescape.io/wlid": self.wlid,
                        "kubescape.io/status": status,
                        "kubescape.io/completion": "complete",
                    },
                },
                "spec": {"imageID": IMAGE_ID, "imageTag": IMAGE_REF, "architectures": ["amd64"]},
            },
        )

    def relevant(
        self, content: dict[str, Any], *, name: str | None = None, instance_id: str | None = None
    ) -> None:
        self.kube.put(
            MANIFESTS,
            {
                "metadata": {
                    "name": name or self.slug,
                    "namespace": self.ks,
                    "labels": {
                        **self.workload_labels("Deployment"),
                        "kubescape.io/context": "filtered",
                    },
                    "annotations": {
                        INSTANCE_ID: instance_id or self.instance.instance_id,
                        "kubescape.io/wlid": self.wlid,
                        "kubescape.io/image-id": IMAGE_ID,
                    },
                },
                "spec": {"metadata": {"withRelevancy": True}, "payload": content},
            },
        )

    def full(self, content: dict[str, Any] = FULL_CONTENT, name: str | None = None) -> None:
        self.kube.put(
            MANIFESTS,
            {
                "metadata": {
                    "name": name or self.image_slug,
                    "namespace": self.ks,
                    "labels": {"kubescape.io/context": "non-filtered"},
                    "annotations": {"kubescape.io/image-id": IMAGE_ID},
                },
                "spec": {"metadata": {"withRelevancy": False}, "payload": content},
            },
        )

    def workload_labels(self, kind: str) -> dict[str, str]:
        return {
            "kubescape.io/workload-kind": kind,
            "kubescape.io/workload-name": self.name,
            "kubescape.io/workload-namespace": self.ns,
            "kubescape.io/workload-container-name": CONTAINER_NAME,
        }

    # -- what a test asserts on -----------------------------------------------------------

    def sandbox_objects(self) -> list[tuple[str, str, str]]:
        """(resource, namespace, name) of the Deployment, Service and NetworkPolicy."""
        return [(kind, self.ns, self.name) for kind in (DEPLOYMENTS, SERVICES, NETWORK_POLICIES)]

    def instance_objects(self) -> list[tuple[str, str, str]]:
        """This instance's Kubescape objects, by exact name (never the image's full manifest)."""
        return [
            (PROFILES, self.ns, self.slug),
            (SUMMARIES, self.ns, self.summary),
            (MANIFESTS, self.ks, self.slug),
            (VEXES, self.ks, self.slug),
            (FILTERED_SBOMS, self.ks, self.slug),
        ]

    def remaining(self) -> list[tuple[str, str, str]]:
        return [
            (kind, ns, name)
            for kind, ns, name in [*self.sandbox_objects(), *self.instance_objects()]
            if self.kube.get(kind, name, ns) is not None
        ]

    def pattern(self, path: str) -> str:
        """A request path with this job's names replaced, for counting requests by kind."""
        for value, placeholder in (
            (self.slug, "{slug}"),
            (self.summary, "{summary}"),
            (self.image_slug, "{image}"),
            (self.pod_name, "{pod}"),
            (self.name, "{name}"),
        ):
            path = path.replace(value, placeholder)
        return path


# -- other workloads' objects ------------------------------------------------------------------

_DECOY_APPS = ("web", "api", "checkout", "payments-worker", "search", "auth", "cart", "mailer")
_DECOY_CONTAINERS = ("app", "nginx", "worker", "envoy")
_DECOY_IMAGES = (
    "docker.io/library/redis:7.2",
    "docker.io/library/postgres:16.4",
    "ghcr.io/acme/checkout:2.14.0",
    "quay.io/prometheus/node-exporter:v1.8.2",
)
OBJECTS_PER_DECOY_WORKLOAD = 10  # 4 in the workload's namespace, 5 in Kubescape's, 1 pod


def seed_decoys(kube: KubeApiServer, count: int) -> int:
    """``count`` objects of other workloads, in the namespaces and kinds the pipeline reads.

    Each decoy Deployment container gets what Kubescape writes for one (FORMATS.md §2): in the
    workload's namespace a ContainerProfile, ApplicationProfile, NetworkNeighborhood and
    summary; in Kubescape's the relevant manifest, filtered SBOM and VEX (instance slug) and the
    image's full manifest and SBOM (image slug); and its pod. None is ours: other names, other
    instance IDs, other images. Returns how many were written (``count`` rounded down to tens).
    """
    workloads = count // OBJECTS_PER_DECOY_WORKLOAD
    return sum(_DecoyWorkload(kube, index).write() for index in range(workloads))


class _DecoyWorkload:
    def __init__(self, kube: KubeApiServer, index: int) -> None:
        self.kube = kube
        self.ns, self.ks = settings.K8S_SANDBOX_NAMESPACE, settings.KUBESCAPE_NAMESPACE
        self.name = f"{_DECOY_APPS[index % len(_DECOY_APPS)]}-{index}"
        self.container = _DECOY_CONTAINERS[index % len(_DECOY_CONTAINERS)]
        self.image = _DECOY_IMAGES[index % len(_DECOY_IMAGES)]
        seed = hashlib.sha256(self.name.encode()).hexdigest()
        self.hash = seed[:10]
        self.rs = f"{self.name}-{self.hash}"
        repository = self.image.rsplit(":", 1)[0]
        self.image_id = f"{repository}@sha256:{seed}"
        self.instance = ContainerInstance("apps/v1", self.ns, "ReplicaSet", self.rs, self.container)
        self.slug = self.instance.slug
        self.wlid = f"wlid://cluster-test/namespace-{self.ns}/deployment-{self.name}"

    def write(self) -> int:
        ns, ks, slug, image = self.ns, self.ks, self.slug, image_slug(self.image, self.image_id)
        workload, filtered = self._workload_labels(), self._filtered_labels()
        summary = summary_name("deployment", self.name, self.container)
        objects = [
            (PROFILES, ns, slug, workload, self._identity("completed")),
            (APPLICATION_PROFILES, ns, self._workload_slug(), self._workload_labels(False), {}),
            (NETWORK_NEIGHBORHOODS, ns, self._workload_slug(), self._workload_labels(False), {}),
            (SUMMARIES, ns, summary, self._summary_labels(), {"kubescape.io/wlid": self.wlid}),
            (MANIFESTS, ks, slug, filtered, self._identity("ready")),
            (FILTERED_SBOMS, ks, slug, filtered, self._identity("ready")),
            (VEXES, ks, slug, filtered, self._identity("ready")),
            (MANIFESTS, ks, image, self._image_labels("non-filtered"), self._image_annotations()),
            (SBOMS, ks, image, self._image_labels(None), self._image_annotations()),
        ]
        for resource, namespace, name, labels, notes in objects:
            metadata = {"name": name, "namespace": namespace, "labels": labels}
            self.kube.put(resource, {"metadata": {**metadata, "annotations": notes}})
        self.kube.put(PODS, self._pod())
        return len(objects) + 1

    def _workload_slug(self) -> str:
        return f"replicaset-{self.rs}"  # GetSlug(true): no container, no hash

    def _workload_labels(self, with_container: bool = True) -> dict[str, str]:
        labels = {
            "kubescape.io/workload-api-group": "apps",
            "kubescape.io/workload-api-version": "v1",
            "kubescape.io/workload-namespace": self.ns,
            "kubescape.io/workload-kind": "Deployment",
            "kubescape.io/workload-name": self.name,
            "kubescape.io/instance-template-hash": self.hash,
        }
        if with_container:
            labels["kubescape.io/workload-container-name"] = self.container
        return labels

    def _identity(self, status: str) -> dict[str, str]:
        return {
            INSTANCE_ID: self.instance.instance_id,
            "kubescape.io/wlid": self.wlid,
            "kubescape.io/status": status,
            "kubescape.io/completion": "complete",
            "kubescape.io/image-id": self.image_id,
        }

    def _filtered_labels(self) -> dict[str, str]:
        return {
            **self._workload_labels(),
            "kubescape.io/sbom-type": "container",
            "kubescape.io/context": "filtered",
        }

    def _summary_labels(self) -> dict[str, str]:
        return {
            **self._image_labels("filtered"),
            **self._workload_labels(),
            "kubescape.io/workload-kind": "deployment",  # lowercase on summaries
        }

    def _image_labels(self, context: str | None) -> dict[str, str]:
        repository, tag = self.image.rsplit(":", 1)
        labels = {
            "kubescape.io/image-name": repository.replace("/", "-"),
            "kubescape.io/image-tag": tag,
            "kubescape.io/sbom-type": "image",
        }
        if context:
            labels["kubescape.io/context"] = context
        return labels

    def _image_annotations(self) -> dict[str, str]:
        return {"kubescape.io/image-id": self.image_id, "kubescape.io/status": "ready"}

    def _pod(self) -> dict[str, Any]:
        labels = {"app": self.name, "pod-template-hash": self.hash}
        pod = {
            "metadata": {
                "name": f"{self.rs}-{self.hash[:5]}",
                "namespace": self.ns,
                "labels": labels,
                "ownerReferences": [_owner("ReplicaSet", self.rs, None)],
            },
            "spec": {"containers": [{"name": self.container, "image": self.image}]},
        }
        return _with_status(pod, None)


def _with_status(pod: dict[str, Any], waiting: str | None) -> dict[str, Any]:
    """What the kubelet reports: running and Ready, or its container waiting for ``waiting``."""
    image = pod["spec"]["containers"][0]["image"]
    ready = str(waiting is None)
    if waiting is None:
        state, image_id = {"running": {"startedAt": "2026-01-01T00:00:05Z"}}, IMAGE_ID
    else:
        state, image_id = {"waiting": {"reason": waiting, "message": f"{waiting}: {image}"}}, ""
    pod["status"] = {
        "phase": "Running" if waiting is None else "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "ContainersReady", "status": ready},
            {"type": "Ready", "status": ready},
        ],
        "containerStatuses": [
            {
                "name": CONTAINER_NAME,
                "image": image,
                "imageID": image_id,
                "ready": waiting is None,
                "restartCount": 0,
                "state": state,
            }
        ],
    }
    return pod


def _owner(kind: str, name: str, owner: dict[str, Any] | None) -> dict[str, Any]:
    uid = ((owner or {}).get("metadata") or {}).get("uid", "00000000-0000-4000-8000-000000000000")
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


@contextmanager
def when_evidence_is_stored(action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` once, as the pipeline stores its first evidence row.

    The task path runs with the real clock, so no sleep can carry a world step there; this is
    a moment it always reaches. ``post_save`` fires outside the save's transaction handling, so
    an exception raised here (a soft time limit) does not poison the test's transaction.
    """
    fired: list[bool] = []

    def receiver(**_: Any) -> None:
        if not fired:
            fired.append(True)
            action()

    post_save.connect(receiver, sender=AnalysisEvidence, weak=False, dispatch_uid="sandbox-world")
    try:
        yield
    finally:
        post_save.disconnect(sender=AnalysisEvidence, dispatch_uid="sandbox-world")
