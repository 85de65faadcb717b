"""The sandbox's Kubernetes objects and the RBAC printed for operators.

Pure functions, so no cluster and no database: an unsaved AnalysisJob is enough.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from kubernetes import client

from analysis.models import AnalysisJob
from analysis.profiles import normalize_config
from analysis.sandbox import manifests as m

JOB_ID = uuid.UUID("0f8c2a9e-1b2c-4d5e-8f90-a1b2c3d4e5f6")
DIGEST = "sha256:" + "ab" * 32
RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "512Mi"},
}
DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def make_job(request_id: str = "req-1", **overrides: Any) -> AnalysisJob:
    return AnalysisJob(
        id=JOB_ID,
        image_ref="nginx:1.27",
        image_digest=DIGEST,
        config=normalize_config("standard", overrides),
        request_id=request_id,
    )


def make_deployment(job: AnalysisJob | None = None) -> dict[str, Any]:
    return m.deployment(job or make_job(), namespace="sandbox", resources=RESOURCES)


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys(item)


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


# -- names ------------------------------------------------------------------------------


def test_sandbox_name_is_a_short_stable_dns_label():
    name = m.sandbox_name(JOB_ID)
    assert name == "vexxy-0f8c2a9e"
    assert DNS_1123_LABEL.fullmatch(name)
    assert len(name) <= 20
    assert m.sandbox_name(str(JOB_ID)) == name
    assert m.sandbox_name(uuid.UUID(str(JOB_ID))) == name


def test_sandbox_names_of_random_jobs_are_dns_labels():
    for _ in range(50):
        assert DNS_1123_LABEL.fullmatch(m.sandbox_name(uuid.uuid4()))


# -- deployment -----------------------------------------------------------------------------


def test_deployment_runs_the_image_by_digest_in_container_target():
    deployment = make_deployment()
    container = container_of(deployment)
    assert deployment["apiVersion"] == "apps/v1"
    assert deployment["kind"] == "Deployment"
    assert deployment["metadata"]["name"] == "vexxy-0f8c2a9e"
    assert deployment["metadata"]["namespace"] == "sandbox"
    assert deployment["spec"]["replicas"] == 1
    assert container["name"] == m.CONTAINER_NAME == "target"
    assert container["image"] == f"docker.io/library/nginx@{DIGEST}"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["resources"] == RESOURCES
    assert container["resources"] is not RESOURCES


def test_image_with_a_registry_is_pinned_there():
    job = make_job()
    job.image_ref = "ghcr.io/acme/app:v1@sha256:" + "cd" * 32
    assert container_of(make_deployment(job))["image"] == f"ghcr.io/acme/app@{DIGEST}"


def test_sniffing_label_is_the_analysis_duration_as_a_go_duration():
    job = make_job(analysis_duration=420)
    template_labels = make_deployment(job)["spec"]["template"]["metadata"]["labels"]
    assert template_labels[m.SNIFFING_LABEL] == "420s"
    assert m.SNIFFING_LABEL == "kubescape.io/max-sniffing-time"
    assert make_deployment()["spec"]["template"]["metadata"]["labels"][m.SNIFFING_LABEL] == "300s"


def test_job_labels_on_metadata_selector_and_template():
    deployment = make_deployment()
    job_id = str(JOB_ID)
    assert deployment["metadata"]["labels"] == {
        "vexxy.dev/job-id": job_id,
        "app.kubernetes.io/managed-by": "vexxy-premium",
    }
    assert deployment["spec"]["selector"] == {"matchLabels": {"vexxy.dev/job-id": job_id}}
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert template_labels[m.JOB_LABEL] == job_id
    assert template_labels[m.MANAGED_BY_LABEL] == m.MANAGED_BY


def test_request_id_annotation_only_when_the_job_has_one():
    deployment = make_deployment()
    assert deployment["metadata"]["annotations"] == {"vexxy.dev/request-id": "req-1"}
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {
        m.REQUEST_ID_ANNOTATION: "req-1"
    }
    bare = make_deployment(make_job(request_id=""))
    assert "annotations" not in bare["metadata"]
    assert "annotations" not in bare["spec"]["template"]["metadata"]
    assert m.annotations(make_job(request_id="")) == {}


def test_pod_is_hardened():
    deployment = make_deployment()
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert 0 < pod["terminationGracePeriodSeconds"] <= 10
    security = container_of(deployment)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    # Not forced: root images would never start (see the comment in manifests.py).
    assert "runAsNonRoot" not in set(keys(deployment))
    assert deployment["spec"]["revisionHistoryLimit"] == 0
    assert 0 < deployment["spec"]["progressDeadlineSeconds"] <= 1200


def test_no_active_deadline_anywhere_because_the_api_server_rejects_it():
    job = make_job(ports=[8080], health_check_path="/healthz", environment={"A": "1"})
    assert "activeDeadlineSeconds" not in set(keys(make_deployment(job)))


def test_environment_comes_from_the_jobs_secret_and_ports_are_mapped():
    job = make_job(environment={"MODE": "test", "DB_PASSWORD": "hunter2"}, ports=[8080, 9090])
    deployment = make_deployment(job)
    container = container_of(deployment)
    secret_name = f"{m.sandbox_name(job.id)}-env"
    assert container["envFrom"] == [{"secretRef": {"name": secret_name}}]
    assert "hunter2" not in json.dumps(deployment)
    secret = m.env_secret(job, namespace="sandbox")
    assert (secret["kind"], secret["metadata"]["name"], secret["type"]) == (
        "Secret",
        secret_name,
        "Opaque",
    )
    assert secret["stringData"] == {"MODE": "test", "DB_PASSWORD": "hunter2"}
    assert secret["metadata"]["labels"][m.JOB_LABEL] == str(job.id)
    assert m.env_secret(make_job(), namespace="sandbox") is None
    assert container["ports"] == [
        {"name": "p8080", "containerPort": 8080, "protocol": "TCP"},
        {"name": "p9090", "containerPort": 9090, "protocol": "TCP"},
    ]


def test_no_env_and_no_ports_when_not_configured():
    container = container_of(make_deployment())
    assert "envFrom" not in container
    assert "env" not in container
    assert "ports" not in container


def test_readiness_probe_on_the_path_at_the_first_port():
    job = make_job(ports=[8080, 9090], health_check_path="/healthz", health_check_timeout=60)
    probe = container_of(make_deployment(job))["readinessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": 8080, "scheme": "HTTP"}
    assert 0 < probe["timeoutSeconds"] <= probe["periodSeconds"]
    assert probe["failureThreshold"] * probe["periodSeconds"] == 60


def test_no_readiness_probe_without_a_path_or_without_a_port():
    without_path = make_job(ports=[8080])
    without_port = make_job(health_check_path="/healthz")
    assert "readinessProbe" not in container_of(make_deployment(without_path))
    assert "readinessProbe" not in container_of(make_deployment(without_port))


def test_deployment_is_json_ready():
    job = make_job(ports=[80], health_check_path="/", environment={"X": "y"})
    deployment = make_deployment(job)
    assert json.loads(json.dumps(deployment)) == deployment


# -- network policy and service ------------------------------------------------------------


def test_network_policy_denies_all_egress_by_default():
    policy = m.network_policy(make_job(), namespace="sandbox")
    assert policy is not None
    assert policy["kind"] == "NetworkPolicy"
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["metadata"]["name"] == "vexxy-0f8c2a9e"
    assert policy["metadata"]["labels"][m.JOB_LABEL] == str(JOB_ID)
    assert policy["metadata"]["annotations"] == {m.REQUEST_ID_ANNOTATION: "req-1"}
    assert policy["spec"]["podSelector"] == {"matchLabels": {m.JOB_LABEL: str(JOB_ID)}}
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert policy["spec"]["egress"] == []
    assert "ingress" not in policy["spec"]


def test_no_network_policy_when_egress_is_allowed():
    assert m.network_policy(make_job(allow_egress=True), namespace="sandbox") is None


def test_service_only_with_ports():
    assert m.service(make_job(), namespace="sandbox") is None
    svc = m.service(make_job(ports=[8080, 53]), namespace="sandbox")
    assert svc is not None
    assert svc["kind"] == "Service"
    assert svc["metadata"]["name"] == "vexxy-0f8c2a9e"
    assert svc["metadata"]["labels"][m.JOB_LABEL] == str(JOB_ID)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == {m.JOB_LABEL: str(JOB_ID)}
    assert svc["spec"]["ports"] == [
        {"name": "p8080", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
        {"name": "p53", "port": 53, "targetPort": 53, "protocol": "TCP"},
    ]


# -- RBAC ------------------------------------------------------------------------------------


def rules_by_resource(role: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in found, f"{group}/{resource} granted twice"
                found[(group, resource)] = rule["verbs"]
    return found


def test_sandbox_role_grants_exactly_what_the_pipeline_does():
    role = m.sandbox_role("sandbox")
    assert role["kind"] == "Role"
    assert role["metadata"]["namespace"] == "sandbox"
    assert rules_by_resource(role) == {
        ("apps", "deployments"): ["create", "get", "list", "delete", "patch"],
        ("apps", "replicasets"): ["get", "list"],
        ("", "pods"): ["get", "list"],
        ("", "pods/log"): ["get"],
        ("", "services"): ["create", "get", "list", "delete"],
        ("", "secrets"): ["create", "get", "list", "delete"],
        ("networking.k8s.io", "networkpolicies"): ["create", "get", "list", "delete"],
        (m.KUBESCAPE_GROUP, "containerprofiles"): ["get", "list", "delete"],
        (m.KUBESCAPE_GROUP, "vulnerabilitymanifestsummaries"): ["get", "list", "delete"],
    }


def test_kubescape_reader_role_in_the_kubescape_namespace():
    role = m.kubescape_reader_role("kubescape")
    assert role["kind"] == "Role"
    assert role["metadata"]["namespace"] == "kubescape"
    assert rules_by_resource(role) == {
        (m.KUBESCAPE_GROUP, "vulnerabilitymanifests"): ["get", "list", "delete"],
        (m.KUBESCAPE_GROUP, "openvulnerabilityexchangecontainers"): ["get", "list", "delete"],
        (m.KUBESCAPE_GROUP, "sbomsyftfiltereds"): ["get", "list", "delete"],
    }


def test_cluster_roles_are_restricted_by_resource_names(settings):
    (apiservice_rule,) = m.apiservice_reader_cluster_role()["rules"]
    assert apiservice_rule == {
        "apiGroups": ["apiregistration.k8s.io"],
        "resources": ["apiservices"],
        "verbs": ["get"],
        "resourceNames": ["v1beta1.spdx.softwarecomposition.kubescape.io"],
    }
    assert settings.KUBESCAPE_APISERVICE == m.KUBESCAPE_APISERVICE
    (namespace_rule,) = m.namespace_reader_cluster_role("sandbox")["rules"]
    assert namespace_rule == {
        "apiGroups": [""],
        "resources": ["namespaces"],
        "verbs": ["get"],
        "resourceNames": ["sandbox"],
    }


def test_bindings_point_at_their_roles_and_the_service_account():
    objects = m.rbac_objects(
        sandbox_namespace="sb",
        kubescape_namespace="ks",
        service_account_name="svc",
        service_account_namespace="ops",
    )
    roles = {(o["kind"], o["metadata"]["name"]) for o in objects if o["kind"].endswith("Role")}
    bindings = [o for o in objects if o["kind"].endswith("Binding")]
    assert len(bindings) == len(roles) == 4
    for binding in bindings:
        subject = {"kind": "ServiceAccount", "name": "svc", "namespace": "ops"}
        assert binding["subjects"] == [subject]
        ref = binding["roleRef"]
        assert ref["apiGroup"] == "rbac.authorization.k8s.io"
        assert (ref["kind"], ref["name"]) in roles
        if binding["kind"] == "RoleBinding":
            role = next(o for o in objects if o["metadata"]["name"] == ref["name"])
            assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
    assert objects[0] == m.service_account("svc", "ops")


def test_no_wildcards_anywhere_in_the_rbac():
    objects = m.rbac_objects(sandbox_namespace="sb", kubescape_namespace="ks")
    assert not [s for s in strings(objects) if "*" in s]


def test_every_rule_is_built_from_the_module_constants():
    constants = {
        value for name, value in vars(m).items() if name.isupper() and isinstance(value, str)
    }
    constants |= set(m.KUBESCAPE_SANDBOX_RESOURCES) | set(m.KUBESCAPE_NAMESPACE_RESOURCES)
    plurals = {
        "containerprofiles",
        "vulnerabilitymanifests",
        "vulnerabilitymanifestsummaries",
        "openvulnerabilityexchangecontainers",
        "sbomsyftfiltereds",
    }
    assert plurals <= constants
    objects = m.rbac_objects(sandbox_namespace="sb", kubescape_namespace="ks")
    for obj in objects:
        for rule in obj.get("rules", []):
            assert set(rule["resources"]) <= constants
            assert set(rule["apiGroups"]) <= constants


def all_objects() -> list[dict[str, Any]]:
    job = make_job(ports=[8080], health_check_path="/healthz", environment={"A": "1"})
    return [
        make_deployment(job),
        m.network_policy(job, namespace="sandbox"),
        m.service(job, namespace="sandbox"),
        *m.rbac_objects(sandbox_namespace="sb", kubescape_namespace="ks"),
    ]


def test_objects_round_trip_through_the_official_client_models():
    """camelCase keys the API knows: the client's models drop anything else."""
    api = client.ApiClient()
    for obj in all_objects():
        model = getattr(client, f"V1{obj['kind']}").from_dict(obj)
        assert api.sanitize_for_serialization(model) == obj, obj["kind"]


# -- the command ------------------------------------------------------------------------------


def test_command_prints_multi_document_yaml_for_kubectl(capsys, settings):
    settings.K8S_SANDBOX_NAMESPACE = "my-sandbox"
    settings.KUBESCAPE_NAMESPACE = "my-kubescape"
    call_command("print_sandbox_rbac")
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in documents] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    ]
    assert documents[0]["metadata"] == {
        "name": "vexxy-premium",
        "namespace": "vexxy",
        "labels": {m.MANAGED_BY_LABEL: m.MANAGED_BY},
    }
    namespaces = {d["metadata"].get("namespace") for d in documents if d["kind"] == "Role"}
    assert namespaces == {"my-sandbox", "my-kubescape"}
    assert documents == m.rbac_objects(
        sandbox_namespace="my-sandbox", kubescape_namespace="my-kubescape"
    )


def test_command_options_and_json(capsys):
    call_command(
        "print_sandbox_rbac",
        "--json",
        "--service-account=analyzer",
        "--service-account-namespace=tools",
        "--sandbox-namespace=sb",
        "--kubescape-namespace=ks",
    )
    report = json.loads(capsys.readouterr().out)
    assert report["objects"] == m.rbac_objects(
        sandbox_namespace="sb",
        kubescape_namespace="ks",
        service_account_name="analyzer",
        service_account_namespace="tools",
    )
    assert len(report["request_id"]) == 36


@pytest.mark.parametrize("kind", ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"])
def test_command_objects_are_labelled_as_ours(capsys, kind):
    call_command("print_sandbox_rbac")
    documents = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d["kind"] == kind]
    assert documents
    for document in documents:
        assert document["metadata"]["labels"] == {m.MANAGED_BY_LABEL: m.MANAGED_BY}
