"""The sandbox workload: create (or adopt) its objects, watch its pods, delete it all.

A redelivered task meets its own objects with a 409 and adopts them, but only
if their job-id label is this job's; anything else with that name is a
conflict the task must not touch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from kubernetes import client

from analysis.exceptions import InvalidImageError, KubernetesError, SandboxError
from analysis.sandbox import manifests
from analysis.sandbox.client import TransientKubernetesError, api_client, call
from analysis.sandbox.identity import ContainerInstance
from reliability.exceptions import ResourceConflictError

IMAGE_PULL_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CRASH_FAILURES = frozenset(
    {"CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
LOG_LINES = 50


@dataclass
class ReadyPod:
    name: str
    instance: ContainerInstance
    image_id: str = ""  # what the kubelet ran, e.g. docker.io/library/nginx@sha256:…


class Workload:
    """One job's Deployment, NetworkPolicy and Service in the sandbox namespace."""

    def __init__(self, job: Any, retry_sleep: Callable[[float], None] | None = None) -> None:
        self.job = job
        self.namespace = settings.K8S_SANDBOX_NAMESPACE
        self.name = manifests.sandbox_name(job.pk)
        self.retry_sleep = retry_sleep
        self.attempt = job.celery_task_id  # kept: a requeue clears it on the job

    def _call(self, operation: str, method: Callable[..., Any], *args: Any, **kwargs: Any):
        kwargs.setdefault("retry_sleep", self.retry_sleep)
        return call(operation, method, *args, **kwargs)

    # -- preflight ---------------------------------------------------------------

    def check_namespace(self) -> None:
        core = client.CoreV1Api(api_client())
        found = self._call(
            "read namespace",
            core.read_namespace,
            self.namespace,
            resource=f"namespaces/{self.namespace}",
            missing_ok=True,
        )
        if found is None:
            raise SandboxError(
                self.name,
                "namespace missing",
                f"The sandbox namespace {self.namespace!r} does not exist; "
                "create it (the service never creates namespaces).",
            )

    # -- deploy ------------------------------------------------------------------

    def deploy(self) -> None:
        apps = client.AppsV1Api(api_client())
        networking = client.NetworkingV1Api(api_client())
        core = client.CoreV1Api(api_client())
        job, ns = self.job, self.namespace
        secret = manifests.env_secret(job, namespace=ns)
        if secret is not None:
            self._create(
                "secret", core.create_namespaced_secret, core.read_namespaced_secret, secret
            )
        policy = manifests.network_policy(job, namespace=ns)
        if policy is not None:
            self._create(
                "network policy",
                networking.create_namespaced_network_policy,
                networking.read_namespaced_network_policy,
                policy,
            )
        service = manifests.service(job, namespace=ns)
        if service is not None:
            self._create(
                "service", core.create_namespaced_service, core.read_namespaced_service, service
            )
        self._create(
            "deployment",
            apps.create_namespaced_deployment,
            apps.read_namespaced_deployment,
            manifests.deployment(job, namespace=ns, resources=settings.SANDBOX_RESOURCES),
        )

    def _create(self, kind: str, create: Callable, read: Callable, body: dict) -> None:
        name = body["metadata"]["name"]
        try:
            self._call(f"create {kind}", create, self.namespace, body, resource=f"{kind}/{name}")
        except KubernetesError as error:
            if error.details.get("status_code") != 409:
                raise
            existing = self._call(
                f"read {kind}", read, name, self.namespace, resource=f"{kind}/{name}"
            )
            found = existing.metadata.labels or {}
            if found.get(manifests.JOB_LABEL) != str(self.job.pk):
                raise ResourceConflictError(
                    f"A {kind} named {name} exists and belongs to another job.",
                    {"resource": f"{kind}/{name}", "owner": found.get(manifests.JOB_LABEL)},
                ) from error
            if found.get(manifests.ATTEMPT_LABEL) != self.attempt:
                # An earlier run's object, still being removed: try again later.
                raise TransientKubernetesError(
                    f"create {kind}",
                    f"An earlier attempt's {kind} {name} is still there.",
                    status_code=409,
                    resource=f"{kind}/{name}",
                ) from error

    # -- readiness ---------------------------------------------------------------

    def pods(self) -> list[Any]:
        core = client.CoreV1Api(api_client())
        selector = f"{manifests.JOB_LABEL}={self.job.pk}"
        listed = self._call(
            "list pods",
            core.list_namespaced_pod,
            self.namespace,
            label_selector=selector,
            resource="pods",
        )
        # Selectors are applied by a real API server; check again rather than trust it.
        return [
            pod
            for pod in listed.items
            if (pod.metadata.labels or {}).get(manifests.JOB_LABEL) == str(self.job.pk)
        ]

    def ready_pod(self) -> ReadyPod | None:
        """The ready pod, None while starting; raises at once on a failure that will not heal."""
        for pod in self.pods():
            self._raise_if_failing(pod)
            conditions = {c.type: c for c in (pod.status.conditions or [])}
            ready = conditions.get("Ready")
            if ready is not None and ready.status == "True":
                return ReadyPod(pod.metadata.name, self._instance_of(pod), _image_id(pod))
        return None

    def _raise_if_failing(self, pod: Any) -> None:
        for status in pod.status.container_statuses or []:
            waiting = status.state.waiting if status.state else None
            reason = waiting.reason if waiting else None
            if reason in IMAGE_PULL_FAILURES:
                raise InvalidImageError(
                    self.job.image_ref,
                    reason,
                    f"The image could not be pulled ({reason}): {waiting.message or ''}".strip(),
                )
            if reason in CRASH_FAILURES:
                raise SandboxError(
                    self.name,
                    reason,
                    f"The container keeps failing ({reason}).",
                    pod=pod.metadata.name,
                    logs=self.logs(pod.metadata.name),
                )
        for condition in pod.status.conditions or []:
            if (
                condition.type == "PodScheduled"
                and condition.status == "False"
                and condition.reason == "Unschedulable"
            ):
                raise SandboxError(
                    self.name,
                    "Unschedulable",
                    f"The pod cannot be scheduled: {condition.message or ''}",
                    pod=pod.metadata.name,
                )

    def any_instance(self) -> ContainerInstance | None:
        """The container instance of any of the job's pods, ready or not (for cleanup)."""
        for pod in self.pods():
            if pod.metadata.owner_references:
                return self._instance_of(pod)
        return None

    def _instance_of(self, pod: Any) -> ContainerInstance:
        owners = pod.metadata.owner_references or []
        if not owners:
            raise SandboxError(
                self.name,
                "pod has no owner",
                "The sandbox pod has no ReplicaSet owner; Kubescape cannot "
                "attribute its runtime profile.",
            )
        owner = owners[0]
        return ContainerInstance(
            owner.api_version, self.namespace, owner.kind, owner.name, manifests.CONTAINER_NAME
        )

    def logs(self, pod_name: str) -> list[str]:
        core = client.CoreV1Api(api_client())
        try:
            text = self._call(
                "read pod log",
                core.read_namespaced_pod_log,
                pod_name,
                self.namespace,
                container=manifests.CONTAINER_NAME,
                tail_lines=LOG_LINES,
                previous=False,
                resource=f"pods/{pod_name}",
            )
        except KubernetesError:
            return []
        return (text or "").splitlines()[-LOG_LINES:]

    # -- cleanup -----------------------------------------------------------------

    def delete(self) -> list[str]:
        """Delete this run's Deployment (foreground), Service, NetworkPolicy and env Secret.

        Each object is read first and deleted only if it carries this job's and this
        attempt's labels, with its uid as a precondition: an object under the same
        name that belongs to another job or run is never touched. Returns failures.
        """
        apps = client.AppsV1Api(api_client())
        core = client.CoreV1Api(api_client())
        networking = client.NetworkingV1Api(api_client())
        steps = [
            (
                "deployment",
                apps.read_namespaced_deployment,
                apps.delete_namespaced_deployment,
                "Foreground",
            ),
            ("service", core.read_namespaced_service, core.delete_namespaced_service, None),
            (
                "network policy",
                networking.read_namespaced_network_policy,
                networking.delete_namespaced_network_policy,
                None,
            ),
            ("secret", core.read_namespaced_secret, core.delete_namespaced_secret, None),
        ]
        failures = []
        for kind, read, delete, propagation in steps:
            try:
                self._delete_own(kind, read, delete, propagation)
            except Exception as error:  # every step is tried; the reconciler gets the rest
                failures.append(f"{kind}/{self.name}: {type(error).__name__}")
        return failures

    def _delete_own(self, kind: str, read: Callable, delete: Callable, propagation: str | None):
        name = manifests.env_secret_name(self.job.pk) if kind == "secret" else self.name
        resource = f"{kind}/{name}"
        existing = self._call(
            f"read {kind}", read, name, self.namespace, resource=resource, missing_ok=True
        )
        if existing is None:
            return
        found = existing.metadata.labels or {}
        if (
            found.get(manifests.JOB_LABEL) != str(self.job.pk)
            or found.get(manifests.ATTEMPT_LABEL) != self.attempt
        ):
            return
        options = client.V1DeleteOptions(
            propagation_policy=propagation,
            preconditions=client.V1Preconditions(uid=existing.metadata.uid),
        )
        self._call(
            f"delete {kind}",
            delete,
            name,
            self.namespace,
            body=options,
            resource=resource,
            missing_ok=True,
        )


def _image_id(pod: Any) -> str:
    for status in pod.status.container_statuses or []:
        if status.name == manifests.CONTAINER_NAME:
            return status.image_id or ""
    return ""
