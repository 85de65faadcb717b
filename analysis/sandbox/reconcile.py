"""Deletion of sandbox objects that no running job owns, shared by the command and beat."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from kubernetes import client

from analysis import metrics
from analysis.budget import job_budget_seconds
from analysis.models import AnalysisJob
from analysis.sandbox import manifests
from analysis.sandbox.client import api_client, call
from analysis.sandbox.identity import INSTANCE_ID_ANNOTATION, ContainerInstance
from analysis.sandbox.kubescape_objects import KubescapeObjects
from analysis.sandbox.pipeline import WORKLOAD_KIND
from analysis.status import TERMINAL
from analysis.uuids import parse_uuid

WORKLOAD_NAME_LABEL = "kubescape.io/workload-name"
# What node-agent labels a ContainerProfile of our sandbox container with (FORMATS.md §2.3:
# workload-kind is the Deployment's Kind; lowercase on older summaries, so both are accepted).
PROFILE_SELECTOR = (
    "kubescape.io/workload-kind in (Deployment,deployment),"
    f"kubescape.io/workload-container-name={manifests.CONTAINER_NAME}"
)
PROFILE_PAGE_SIZE = 500  # kubescape/storage's own default page


def reconcile_sandboxes(*, dry_run: bool = False) -> dict[str, Any]:
    """Delete sandbox objects whose job is terminal, unknown, or past its budget.

    Workload objects are listed by our managed-by label (the API server filters);
    Kubescape's are found through the ContainerProfiles of ``vexxy-`` workloads in the
    sandbox namespace (every page; selector sent, result checked here) and deleted by
    exact name after their instance-id matched.
    """
    report: dict[str, Any] = {"deleted": [], "failures": [], "dry_run": dry_run}
    namespace = settings.K8S_SANDBOX_NAMESPACE
    for kind, lister, deleter, extra in _workload_kinds():
        listed = call(
            f"list {kind}",
            lister,
            namespace,
            label_selector=f"{manifests.MANAGED_BY_LABEL}={manifests.MANAGED_BY}",
            resource=kind,
        )
        for obj in listed.items:
            labels = obj.metadata.labels or {}
            if labels.get(manifests.MANAGED_BY_LABEL) != manifests.MANAGED_BY:
                continue  # selectors are applied by a real API server; check anyway
            if not _orphaned(labels.get(manifests.JOB_LABEL), labels.get(manifests.ATTEMPT_LABEL)):
                continue
            _delete(
                report,
                f"{kind}/{obj.metadata.name}",
                dry_run,
                call,
                f"delete {kind}",
                deleter,
                obj.metadata.name,
                namespace,
                missing_ok=True,
                **extra,
            )
    for instance, sandbox in _kubescape_instances(namespace):
        job = AnalysisJob.objects.filter(sandbox_name=sandbox).order_by("-created_at").first()
        if not _orphaned(str(job.pk) if job else None):
            continue
        objects = KubescapeObjects(instance, WORKLOAD_KIND, sandbox, settings.KUBESCAPE_NAMESPACE)
        for ns, plural, name in objects.owned():
            if objects.exists(ns, plural, name):
                _delete(report, f"{plural}/{name}", dry_run, objects.delete, ns, plural, name)
    metrics.sandbox_objects_left(len(report["deleted"]) + len(report["failures"]))
    return report


def _workload_kinds():
    apps = client.AppsV1Api(api_client())
    core = client.CoreV1Api(api_client())
    networking = client.NetworkingV1Api(api_client())
    foreground = {"body": client.V1DeleteOptions(propagation_policy="Foreground")}
    return [
        (
            "deployments",
            apps.list_namespaced_deployment,
            apps.delete_namespaced_deployment,
            foreground,
        ),
        ("services", core.list_namespaced_service, core.delete_namespaced_service, {}),
        (
            "networkpolicies",
            networking.list_namespaced_network_policy,
            networking.delete_namespaced_network_policy,
            {},
        ),
        ("secrets", core.list_namespaced_secret, core.delete_namespaced_secret, {}),
    ]


def _orphaned(job_id: str | None, attempt: str | None = None) -> bool:
    job = AnalysisJob.objects.filter(pk=parse_uuid(job_id)).first() if job_id else None
    if job is None or job.status in TERMINAL:
        return True
    if attempt is not None and attempt != job.celery_task_id:
        return True  # left by an earlier run of a job that now runs (or waits) again
    started = job.started_at or job.created_at
    deadline = started + timedelta(
        seconds=job_budget_seconds(job.config["analysis_duration"])
        + settings.ANALYSIS_CLEANUP_ALLOWANCE_SECONDS * 2
    )
    return timezone.now() > deadline


def _kubescape_instances(namespace: str) -> Iterator[tuple[ContainerInstance, str]]:
    """(instance, sandbox name) of every ContainerProfile Kubescape wrote for our workloads."""
    for item in _our_profiles(namespace):
        metadata = item.get("metadata") or {}
        labels = metadata.get("labels") or {}
        sandbox = labels.get(WORKLOAD_NAME_LABEL, "")
        instance = ContainerInstance.from_instance_id(
            (metadata.get("annotations") or {}).get(INSTANCE_ID_ANNOTATION, "")
        )
        if not sandbox.startswith(manifests.SANDBOX_PREFIX) or instance is None:
            continue
        if instance.slug == metadata.get("name") and instance.namespace == namespace:
            yield instance, sandbox


def _our_profiles(namespace: str) -> Iterator[dict[str, Any]]:
    """The ContainerProfiles of our sandbox containers, page by page (metadata only).

    The selector keeps a storage server that applies it (newer kubescape/storage) to our
    objects; v0.0.297 ignores it and answers pages of 500 whatever it says, so every page is
    read (``continue``) and the caller checks each object itself.
    """
    custom = client.CustomObjectsApi(api_client())
    token: str | None = None
    while True:
        listed = (
            call(
                "list containerprofiles",
                custom.list_namespaced_custom_object,
                manifests.KUBESCAPE_GROUP,
                manifests.KUBESCAPE_VERSION,
                namespace,
                manifests.CONTAINER_PROFILES,
                label_selector=PROFILE_SELECTOR,
                limit=PROFILE_PAGE_SIZE,
                _continue=token,
                resource=manifests.CONTAINER_PROFILES,
            )
            or {}
        )
        yield from listed.get("items", [])
        token = (listed.get("metadata") or {}).get("continue")
        if not token:
            return


def _delete(
    report: dict[str, Any], what: str, dry_run: bool, delete: Any, *args: Any, **kwargs: Any
) -> None:
    if not dry_run:
        try:
            delete(*args, **kwargs)
        except Exception as error:
            report["failures"].append(f"{what}: {type(error).__name__}")
            return
    report["deleted"].append(what)
