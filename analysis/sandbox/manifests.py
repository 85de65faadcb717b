"""The Kubernetes objects of one sandbox run, and the RBAC the service needs — as plain dicts.

Why pure functions returning dicts: the pipeline hands them to the official
client's ``create_namespaced_*`` calls (which accept dicts with the API's
camelCase keys), the reconciler and the tests read them without a cluster, and
``manage.py print_sandbox_rbac`` prints the RBAC from the very same constants
the pipeline uses, so the permissions an operator grants cannot drift from the
calls the code makes. Nothing here talks to the API server or the database.

What a sandbox is (DESIGN "Pipeline" step 2): a Deployment ``vexxy-<8 hex>``
running the image by digest in one container ``target``, labelled for
Kubescape's learning period (``kubescape.io/max-sniffing-time``), hardened, and
— unless the job asks for egress — isolated by a deny-all-egress
NetworkPolicy; plus a ClusterIP Service when the job names ports.

The job's ``environment`` values go into a Secret of the job (``vexxy-<8 hex>-env``) that the
container reads with ``envFrom``; the Deployment names the variables' source, never a value.
"""

from __future__ import annotations

import copy
import math
import uuid
from collections.abc import Mapping
from typing import Any

from analysis.image_reference import parse_image_reference

# -- names, labels, annotations ------------------------------------------------------

CONTAINER_NAME = "target"
SANDBOX_PREFIX = "vexxy-"
JOB_LABEL = "vexxy.dev/job-id"
ATTEMPT_LABEL = "vexxy.dev/attempt"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "vexxy-premium"
REQUEST_ID_ANNOTATION = "vexxy.dev/request-id"
SNIFFING_LABEL = "kubescape.io/max-sniffing-time"

# -- API groups and resources the service touches -----------------------------------

CORE_GROUP = ""
APPS_GROUP = "apps"
NETWORKING_GROUP = "networking.k8s.io"
APIREGISTRATION_GROUP = "apiregistration.k8s.io"
RBAC_GROUP = "rbac.authorization.k8s.io"

DEPLOYMENTS = "deployments"
REPLICASETS = "replicasets"
PODS = "pods"
POD_LOGS = "pods/log"
SERVICES = "services"
SECRETS = "secrets"
NETWORK_POLICIES = "networkpolicies"
NAMESPACES = "namespaces"
APISERVICES = "apiservices"

KUBESCAPE_GROUP = "spdx.softwarecomposition.kubescape.io"
KUBESCAPE_VERSION = "v1beta1"
KUBESCAPE_APISERVICE = f"{KUBESCAPE_VERSION}.{KUBESCAPE_GROUP}"
# Kubescape's storage API server keeps these in the workload's (sandbox) namespace:
CONTAINER_PROFILES = "containerprofiles"
VULNERABILITY_MANIFEST_SUMMARIES = "vulnerabilitymanifestsummaries"
# ... and these in the Kubescape namespace:
VULNERABILITY_MANIFESTS = "vulnerabilitymanifests"
OPENVEX_CONTAINERS = "openvulnerabilityexchangecontainers"
SBOM_SYFT_FILTERED = "sbomsyftfiltereds"

KUBESCAPE_SANDBOX_RESOURCES = (CONTAINER_PROFILES, VULNERABILITY_MANIFEST_SUMMARIES)
KUBESCAPE_NAMESPACE_RESOURCES = (VULNERABILITY_MANIFESTS, OPENVEX_CONTAINERS, SBOM_SYFT_FILTERED)

# -- verbs: exactly what the service does, nothing more ------------------------------

DEPLOYMENT_VERBS = ("create", "get", "list", "delete", "patch")
READ_VERBS = ("get", "list")
OWNED_OBJECT_VERBS = ("create", "get", "list", "delete")
KUBESCAPE_VERBS = ("get", "list", "delete")
GET_ONLY = ("get",)

# -- pod lifetime knobs --------------------------------------------------------------

TERMINATION_GRACE_SECONDS = 5
PROBE_PERIOD_SECONDS = 5
PROBE_TIMEOUT_SECONDS = 3
# Image pull and scheduling on top of the job's health-check time; the API
# server then marks the rollout ``ProgressDeadlineExceeded`` instead of waiting forever.
PROGRESS_ALLOWANCE_SECONDS = 300

DEFAULT_SERVICE_ACCOUNT = "vexxy-premium"
DEFAULT_SERVICE_ACCOUNT_NAMESPACE = "vexxy"

KubeObject = dict[str, Any]


def sandbox_name(job_id: uuid.UUID | str) -> str:
    """``vexxy-<first 8 hex digits of the job id>``: a 14-character DNS-1123 label.

    Short on purpose: the ReplicaSet adds ``-<hash>``, pods another suffix, and
    Kubescape builds slugs from ``replicaset-<rs>-target-xxxx-xxxx``. Two jobs
    sharing a prefix are told apart by the full job-id label (the pipeline
    verifies it before adopting an existing object).
    """
    return f"{SANDBOX_PREFIX}{uuid.UUID(str(job_id)).hex[:8]}"


def labels(job: Any) -> dict[str, str]:
    """The labels of every object created for ``job``; the job-id label selects its pods.

    The attempt label (the task id) tells this run's objects from those an earlier,
    lost run of the same job left behind: each run deletes only its own.
    """
    found = {JOB_LABEL: str(job.id), MANAGED_BY_LABEL: MANAGED_BY}
    if getattr(job, "celery_task_id", ""):
        found[ATTEMPT_LABEL] = job.celery_task_id
    return found


def selector(job: Any) -> dict[str, str]:
    return {JOB_LABEL: str(job.id)}


def annotations(job: Any) -> dict[str, str]:
    """The submission's correlation ID, so an operator can go from an object to the logs.

    The request ID was validated at the edge ([A-Za-z0-9._:+/=-]{1,200}), and
    annotation values are free text: it is written as is.
    """
    return {REQUEST_ID_ANNOTATION: job.request_id} if job.request_id else {}


def _metadata(job: Any, namespace: str) -> KubeObject:
    meta: KubeObject = {"name": sandbox_name(job.id), "namespace": namespace, "labels": labels(job)}
    notes = annotations(job)
    if notes:
        meta["annotations"] = notes
    return meta


def sniffing_time(config: Mapping[str, Any]) -> str:
    """The observation window as a Go duration string (``300s``), as node-agent parses it."""
    return f"{int(config['analysis_duration'])}s"


# -- workload ------------------------------------------------------------------------


def deployment(job: Any, *, namespace: str, resources: Mapping[str, Any]) -> KubeObject:
    """The sandbox Deployment: one replica of the image, pinned by digest, hardened."""
    config = job.config
    meta = _metadata(job, namespace)
    template_labels = {**labels(job), SNIFFING_LABEL: sniffing_time(config)}
    template_meta: KubeObject = {"labels": template_labels}
    if "annotations" in meta:
        template_meta["annotations"] = dict(meta["annotations"])
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(job)},
            # Never two pods (two ReplicaSets, two Kubescape instance IDs) at once.
            "strategy": {"type": "Recreate"},
            "revisionHistoryLimit": 0,
            "progressDeadlineSeconds": int(config["health_check_timeout"])
            + PROGRESS_ALLOWANCE_SECONDS,
            "template": {"metadata": template_meta, "spec": _pod_spec(job, resources)},
        },
    }


def _pod_spec(job: Any, resources: Mapping[str, Any]) -> KubeObject:
    # No activeDeadlineSeconds: a real API server answers 422 for it in a
    # Deployment's pod template (only restartPolicy Always is allowed there).
    # The run's lifetime is bounded by the job's budget in the pipeline, which
    # deletes the Deployment, and by reconcile_sandboxes for anything left over.
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_container(job, resources)],
    }


def _container(job: Any, resources: Mapping[str, Any]) -> KubeObject:
    config = job.config
    image = parse_image_reference(job.image_ref).pinned(job.image_digest)
    container: KubeObject = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        # DESIGN says "runAsNonRoot when the image allows". Whether an image can
        # run as non-root (its USER, file ownership, ports) is only known by
        # running it, and forcing runAsNonRoot makes every root image fail with
        # CreateContainerConfigError. So it is not forced; the other controls
        # (no privilege escalation, no capabilities, seccomp, no token) apply to all.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": copy.deepcopy(dict(resources)),
    }
    if config.get("environment"):
        container["envFrom"] = [{"secretRef": {"name": env_secret_name(job.id)}}]
    ports = list(config.get("ports") or [])
    if ports:
        container["ports"] = [
            {"name": _port_name(port), "containerPort": port, "protocol": "TCP"} for port in ports
        ]
    probe = readiness_probe(config)
    if probe:
        container["readinessProbe"] = probe
    return container


def readiness_probe(config: Mapping[str, Any]) -> KubeObject | None:
    """HTTP GET on ``health_check_path`` at the first port; None without a path or a port.

    The pipeline waits at most ``health_check_timeout`` for readiness; the
    failure threshold spans the same time once the pod has been ready.
    """
    path = config.get("health_check_path")
    ports = config.get("ports") or []
    if not path or not ports:
        return None
    timeout = int(config.get("health_check_timeout") or PROBE_PERIOD_SECONDS)
    return {
        "httpGet": {"path": path, "port": ports[0], "scheme": "HTTP"},
        "periodSeconds": PROBE_PERIOD_SECONDS,
        "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
        "successThreshold": 1,
        "failureThreshold": max(1, math.ceil(timeout / PROBE_PERIOD_SECONDS)),
    }


def _port_name(port: int) -> str:
    # IANA_SVC_NAME: at most 15 characters, at least one letter.
    return f"p{port}"


def env_secret_name(job_id: uuid.UUID | str) -> str:
    return f"{sandbox_name(job_id)}-env"


def env_secret(job: Any, *, namespace: str) -> KubeObject | None:
    """The job's environment as a Secret, or None without one. Never log its body."""
    environment = job.config.get("environment") or {}
    if not environment:
        return None
    meta = _metadata(job, namespace)
    meta["name"] = env_secret_name(job.id)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "stringData": dict(environment),
    }


def network_policy(job: Any, *, namespace: str) -> KubeObject | None:
    """Deny all egress from the job's pods; None when the job asked for egress.

    Deny means deny: DNS is not let through either. An image under analysis
    has no business resolving names unless the client allowed egress, and an
    open port 53 is a known exfiltration channel.
    """
    if job.config.get("allow_egress"):
        return None
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(job, namespace),
        "spec": {
            "podSelector": {"matchLabels": selector(job)},
            "policyTypes": ["Egress"],
            "egress": [],
        },
    }


def service(job: Any, *, namespace: str) -> KubeObject | None:
    """A ClusterIP Service in front of the job's pod, one port per configured port."""
    ports = list(job.config.get("ports") or [])
    if not ports:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(job, namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(job),
            "ports": [
                {"name": _port_name(port), "port": port, "targetPort": port, "protocol": "TCP"}
                for port in ports
            ],
        },
    }


# -- RBAC (least privilege for what the pipeline and the reconciler do) -----------------


def _rule(
    group: str,
    resources: tuple[str, ...] | list[str],
    verbs: tuple[str, ...],
    resource_names: list[str] | None = None,
) -> KubeObject:
    rule: KubeObject = {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}
    if resource_names is not None:
        rule["resourceNames"] = list(resource_names)
    return rule


def _rbac_labels() -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY}


def _subjects(service_account: str, service_account_namespace: str) -> list[KubeObject]:
    return [
        {"kind": "ServiceAccount", "name": service_account, "namespace": service_account_namespace}
    ]


SANDBOX_ROLE = f"{MANAGED_BY}-sandbox"
KUBESCAPE_READER_ROLE = f"{MANAGED_BY}-kubescape-results"
APISERVICE_READER_ROLE = f"{MANAGED_BY}-kubescape-apiservice-reader"


def namespace_reader_role_name(namespace: str) -> str:
    return f"{MANAGED_BY}-namespace-reader-{namespace}"


def service_account(name: str, namespace: str) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": _rbac_labels()},
    }


def sandbox_role(namespace: str) -> KubeObject:
    """Run sandboxes in ``namespace`` and read/delete Kubescape's objects written there."""
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "Role",
        "metadata": {"name": SANDBOX_ROLE, "namespace": namespace, "labels": _rbac_labels()},
        "rules": [
            _rule(APPS_GROUP, [DEPLOYMENTS], DEPLOYMENT_VERBS),
            _rule(APPS_GROUP, [REPLICASETS], READ_VERBS),
            _rule(CORE_GROUP, [PODS], READ_VERBS),
            _rule(CORE_GROUP, [POD_LOGS], GET_ONLY),
            _rule(CORE_GROUP, [SERVICES, SECRETS], OWNED_OBJECT_VERBS),
            _rule(NETWORKING_GROUP, [NETWORK_POLICIES], OWNED_OBJECT_VERBS),
            _rule(KUBESCAPE_GROUP, KUBESCAPE_SANDBOX_RESOURCES, KUBESCAPE_VERBS),
        ],
    }


def sandbox_role_binding(
    namespace: str, service_account: str, service_account_namespace: str
) -> KubeObject:
    return _role_binding(SANDBOX_ROLE, namespace, service_account, service_account_namespace)


def kubescape_reader_role(kubescape_namespace: str) -> KubeObject:
    """Read and delete (by exact name) the results Kubescape stores in its own namespace."""
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "Role",
        "metadata": {
            "name": KUBESCAPE_READER_ROLE,
            "namespace": kubescape_namespace,
            "labels": _rbac_labels(),
        },
        "rules": [_rule(KUBESCAPE_GROUP, KUBESCAPE_NAMESPACE_RESOURCES, KUBESCAPE_VERBS)],
    }


def kubescape_reader_role_binding(
    kubescape_namespace: str, service_account: str, service_account_namespace: str
) -> KubeObject:
    return _role_binding(
        KUBESCAPE_READER_ROLE, kubescape_namespace, service_account, service_account_namespace
    )


def namespace_reader_cluster_role(namespace: str) -> KubeObject:
    """GET on the sandbox namespace only (preflight): namespaces are cluster-scoped."""
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": namespace_reader_role_name(namespace), "labels": _rbac_labels()},
        "rules": [_rule(CORE_GROUP, [NAMESPACES], GET_ONLY, resource_names=[namespace])],
    }


def namespace_reader_cluster_role_binding(
    namespace: str, service_account: str, service_account_namespace: str
) -> KubeObject:
    return _cluster_role_binding(
        namespace_reader_role_name(namespace), service_account, service_account_namespace
    )


def apiservice_reader_cluster_role(apiservice: str = KUBESCAPE_APISERVICE) -> KubeObject:
    """GET on Kubescape's APIService only (health check and preflight)."""
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": APISERVICE_READER_ROLE, "labels": _rbac_labels()},
        "rules": [_rule(APIREGISTRATION_GROUP, [APISERVICES], GET_ONLY, [apiservice])],
    }


def apiservice_reader_cluster_role_binding(
    service_account: str, service_account_namespace: str
) -> KubeObject:
    return _cluster_role_binding(APISERVICE_READER_ROLE, service_account, service_account_namespace)


def _role_binding(
    role: str, namespace: str, service_account: str, service_account_namespace: str
) -> KubeObject:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": role, "namespace": namespace, "labels": _rbac_labels()},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": role},
        "subjects": _subjects(service_account, service_account_namespace),
    }


def _cluster_role_binding(
    cluster_role: str, service_account: str, service_account_namespace: str
) -> KubeObject:
    # Cluster-wide names: the subject is part of the name, so two installations
    # (different service accounts) do not overwrite each other's binding.
    name = f"{cluster_role}-{service_account_namespace}-{service_account}"
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": _rbac_labels()},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": cluster_role},
        "subjects": _subjects(service_account, service_account_namespace),
    }


def rbac_objects(
    *,
    sandbox_namespace: str,
    kubescape_namespace: str,
    service_account_name: str = DEFAULT_SERVICE_ACCOUNT,
    service_account_namespace: str = DEFAULT_SERVICE_ACCOUNT_NAMESPACE,
    apiservice: str = KUBESCAPE_APISERVICE,
) -> list[KubeObject]:
    """The ServiceAccount and every Role/ClusterRole and binding, in ``kubectl apply`` order."""
    sa, sa_ns = service_account_name, service_account_namespace
    return [
        service_account(sa, sa_ns),
        sandbox_role(sandbox_namespace),
        sandbox_role_binding(sandbox_namespace, sa, sa_ns),
        kubescape_reader_role(kubescape_namespace),
        kubescape_reader_role_binding(kubescape_namespace, sa, sa_ns),
        namespace_reader_cluster_role(sandbox_namespace),
        namespace_reader_cluster_role_binding(sandbox_namespace, sa, sa_ns),
        apiservice_reader_cluster_role(apiservice),
        apiservice_reader_cluster_role_binding(sa, sa_ns),
    ]
