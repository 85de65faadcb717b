"""The Kubernetes manifests in deploy/kubernetes: valid, complete, hardened, and true to the code.

Offline: schemas from kubernetes-validate, the RBAC from ``print_sandbox_rbac``, the time
limits from analysis/budget.py, the image's user and command from the Dockerfile.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command

from analysis.budget import MAX_ANALYSIS_SECONDS, task_time_limits
from analysis.sandbox.manifests import DEFAULT_SERVICE_ACCOUNT, DEFAULT_SERVICE_ACCOUNT_NAMESPACE
from tests.support.tools import required_tool
from vexxy.container_health import beat_schedule, role_of

# Installed apart by `make install` (see the Makefile): on the venv's path, every
# `import kubernetes` in the service's processes would import it too.
sys.path.append(str(Path(sys.prefix) / "manifest-tools"))
import kubernetes_validate

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "kubernetes"
# The newest release whose schemas kubernetes-validate ships; strict: unknown fields fail.
KUBERNETES_VERSION = "1.37.0"
# Files of the folder that kustomization.yaml deliberately does not apply, and why.
NOT_APPLIED = {"secret.example.yaml": "a template: apply -k must not overwrite the real Secret"}
NAMESPACE = DEFAULT_SERVICE_ACCOUNT_NAMESPACE
IMAGE = "vexxy-premium"
# Pod templates and whether each may mount a service-account token (only the worker calls the API).
TOKEN = {"vexxy-web": False, "vexxy-worker": True, "vexxy-beat": False, "vexxy-migrate": False}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
# A mount path in the pods (an emptyDir), not a temporary file of this test.
TMP = "/tmp"  # noqa: S108


def load(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def manifest_files() -> list[str]:
    return sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


def kustomization() -> dict[str, Any]:
    return load("kustomization.yaml")[0]


def applied_objects() -> list[dict[str, Any]]:
    return [doc for name in kustomization()["resources"] for doc in load(name)]


def one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in applied_objects() if (o["kind"], o["metadata"]["name"]) == (kind, name)]
    return found


def pod_templates() -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in applied_objects()
        if o["kind"] in ("Deployment", "Job")
    }


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return pod.get("initContainers", []) + pod["containers"]


def config() -> dict[str, str]:
    return one("ConfigMap", "vexxy-config")["data"]


def secret_template() -> dict[str, Any]:
    (secret,) = load("secret.example.yaml")
    return secret


def env_of(container: dict[str, Any]) -> dict[str, str]:
    """What the container's process sees: the ConfigMap, then its own ``env`` on top."""
    own = {e["name"]: e.get("value") for e in container.get("env", [])}
    return {**config(), **own}


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def schema_release(doc: dict[str, Any]) -> str:
    """The release whose schema ``doc`` meets, or a one-line reason (the error's str() is the
    whole schema)."""
    try:
        return kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(map(str, error.absolute_path))
        return f"{doc['kind']} {doc['metadata']['name']}: {where}: {error.message}"


@pytest.mark.parametrize("name", manifest_files())
def test_every_manifest_is_valid_for_the_pinned_kubernetes_release(name: str) -> None:
    release = KUBERNETES_VERSION.rsplit(".", 1)[0]
    assert [schema_release(doc) for doc in load(name)] == [release] * len(load(name))


def test_the_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    resources = kustomization()["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == set(manifest_files()) - set(NOT_APPLIED)
    assert set(NOT_APPLIED) <= set(manifest_files())
    # A `namespace:` would move the sandbox and Kubescape Roles into the service's namespace.
    assert "namespace" not in kustomization()
    assert [i["name"] for i in kustomization()["images"]] == [IMAGE]


def test_the_service_objects_live_in_its_namespace_and_the_sandbox_namespace_is_created() -> None:
    rbac = {(o["kind"], o["metadata"]["name"]) for o in load("rbac.yaml")}
    for o in [*applied_objects(), secret_template()]:
        if o["kind"] not in CLUSTER_SCOPED and (o["kind"], o["metadata"]["name"]) not in rbac:
            assert o["metadata"].get("namespace") == NAMESPACE, o["metadata"]["name"]
    namespaces = {o["metadata"]["name"] for o in load("namespace.yaml")}
    assert namespaces == {NAMESPACE, config()["K8S_SANDBOX_NAMESPACE"]}


def test_rbac_yaml_is_what_print_sandbox_rbac_prints(settings: Any) -> None:
    # The command takes its namespaces from the settings: those the ConfigMap gives the service.
    settings.K8S_SANDBOX_NAMESPACE = config()["K8S_SANDBOX_NAMESPACE"]
    settings.KUBESCAPE_NAMESPACE = config()["KUBESCAPE_NAMESPACE"]
    out = io.StringIO()
    call_command("print_sandbox_rbac", stdout=out)
    assert load("rbac.yaml") == [doc for doc in yaml.safe_load_all(out.getvalue()) if doc]
    # Its ServiceAccount is the worker's, and no other file makes one.
    accounts = [o for o in applied_objects() if o["kind"] == "ServiceAccount"]
    assert [a["metadata"]["name"] for a in accounts] == [DEFAULT_SERVICE_ACCOUNT]
    assert pod_templates()["vexxy-worker"]["serviceAccountName"] == DEFAULT_SERVICE_ACCOUNT


@pytest.mark.parametrize("name", sorted(TOKEN))
def test_every_pod_is_hardened_and_configured(name: str) -> None:
    pod = pod_templates()[name]
    uid = int(re.search(r"^USER (\d+)$", dockerfile(), re.M)[1])
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is TOKEN[name]
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for c in containers(pod):
        assert c["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, c["name"]
        assert c["image"] == IMAGE
        assert {"requests", "limits"} <= set(c["resources"]), c["name"]
        assert c["envFrom"] == [
            {"configMapRef": {"name": "vexxy-config"}},
            {"secretRef": {"name": secret_template()["metadata"]["name"]}},
        ]
        # The only writable paths: the data directory the settings use, and /tmp.
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert set(mounts) == {env_of(c)["VEXXY_DATA_DIR"], TMP}, c["name"]
        assert set(mounts.values()) <= empty_dirs


def test_the_data_directory_is_the_images() -> None:
    assert re.search(rf"VEXXY_DATA_DIR={re.escape(config()['VEXXY_DATA_DIR'])}\b", dockerfile())


def test_web_runs_the_images_command_and_probes_with_an_allowed_host() -> None:
    (web,) = pod_templates()["vexxy-web"]["containers"]
    assert web["command"] == json.loads(re.search(r"^CMD (\[.*\])$", dockerfile(), re.M)[1])
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    assert ports == {"http": 8000}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        assert web[probe]["httpGet"] == {
            "path": path,
            "port": "http",
            "httpHeaders": [{"name": "Host", "value": "localhost"}],
        }
    assert "localhost" in config()["ALLOWED_HOSTS"].split(",")
    # No token on web: it reads the cluster's health from the workers; only web does.
    assert env_of(web)["SANDBOX_HEALTH_FROM_WORKERS"] == "true"
    assert "SANDBOX_HEALTH_FROM_WORKERS" not in config()
    service = one("Service", "vexxy-web")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]


def test_web_rolls_without_losing_capacity_and_the_autoscaler_owns_its_replicas() -> None:
    web = one("Deployment", "vexxy-web")
    assert "replicas" not in web["spec"]
    assert web["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    hpa = one("HorizontalPodAutoscaler", "vexxy-web")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "vexxy-web",
    }
    assert hpa["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]


def test_every_disruption_budget_selects_pods_of_a_deployment() -> None:
    labels = [
        o["spec"]["template"]["metadata"]["labels"]
        for o in applied_objects()
        if o["kind"] == "Deployment"
    ]
    for pdb in (o for o in applied_objects() if o["kind"] == "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= pod.items() for pod in labels), pdb["metadata"]["name"]
    assert one("PodDisruptionBudget", "vexxy-web")["spec"]["minAvailable"] == 1


def test_worker_and_beat_probe_their_own_role() -> None:
    for name in ("vexxy-worker", "vexxy-beat"):
        (c,) = pod_templates()[name]["containers"]
        assert c["livenessProbe"]["exec"]["command"] == ["python", "-m", "vexxy.container_health"]
        assert env_of(c)["VEXXY_ROLE"] == role_of(c["command"]) == name.removeprefix("vexxy-")
    (worker,) = pod_templates()["vexxy-worker"]["containers"]
    assert "worker@$(POD_NAME)" in worker["command"]
    (pod_name,) = [e for e in worker["env"] if e["name"] == "POD_NAME"]
    assert pod_name["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # Beat's schedule, which its probe reads, is on the pod's writable data directory.
    (beat,) = pod_templates()["vexxy-beat"]["containers"]
    schedule = beat_schedule(beat["command"], Path("/app"))
    assert schedule.parent == Path(env_of(beat)["VEXXY_DATA_DIR"])


def test_beat_is_one_pod_that_is_replaced_not_doubled() -> None:
    beat = one("Deployment", "vexxy-beat")["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"] == {"type": "Recreate"}


def test_worker_waits_for_its_longest_job_and_reaches_the_cluster() -> None:
    pod = pod_templates()["vexxy-worker"]
    hard_limit = task_time_limits(MAX_ANALYSIS_SECONDS)[1]
    assert pod["terminationGracePeriodSeconds"] > hard_limit
    (worker,) = pod["containers"]
    assert {k: env_of(worker)[k] for k in ("K8S_IN_CLUSTER", "SANDBOX_ENABLED")} == {
        "K8S_IN_CLUSTER": "true",
        "SANDBOX_ENABLED": "true",
    }
    assert "--concurrency" in worker["command"]


def test_the_migration_job_migrates_then_creates_the_cache_table() -> None:
    job = one("Job", "vexxy-migrate")["spec"]
    assert {"backoffLimit", "ttlSecondsAfterFinished"} <= set(job)
    steps = [c["command"] for c in containers(job["template"]["spec"])]
    assert steps == [
        ["python", "manage.py", "migrate", "--noinput"],
        ["python", "manage.py", "createcachetable"],
    ]
    # Every long-running pod waits for it before it starts.
    for name in ("vexxy-web", "vexxy-worker", "vexxy-beat"):
        (wait,) = pod_templates()[name]["initContainers"]
        assert "manage.py migrate --check" in wait["command"][-1]


def test_every_variable_the_manifests_set_is_read_by_the_service() -> None:
    sources = "".join(
        (REPO / path).read_text()
        for path in ("vexxy/settings.py", "gunicorn.conf.py", "vexxy/container_health.py")
    )
    names = set(config()) | set(secret_template()["stringData"])
    for pod in pod_templates().values():
        names |= {e["name"] for c in containers(pod) for e in c.get("env", []) if "value" in e}
    assert {n for n in names if f'"{n}"' not in sources} == set()


def production_settings(secret_key: str) -> subprocess.CompletedProcess[str]:
    """Load the settings with the ConfigMap and the Secret template, as a pod does."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CACHE_URL")
    }
    env |= config() | secret_template()["stringData"]
    env |= {"SECRET_KEY": secret_key, "DJANGO_SETTINGS_MODULE": "vexxy.settings"}
    code = (
        "from django.conf import settings as s; import json; print(json.dumps([s.IS_PRODUCTION,"
        " s.SANDBOX_ENABLED, s.K8S_IN_CLUSTER, s.ALLOWED_HOSTS, s.LOG_FORMAT]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_the_configmap_gives_a_production_service_with_the_sandbox() -> None:
    result = production_settings(secret_key="x" * 50)
    assert result.returncode == 0, result.stderr
    production, sandbox, in_cluster, hosts, log_format = json.loads(result.stdout)
    assert (production, sandbox, in_cluster, log_format) == (True, True, True, "json")
    assert "localhost" in hosts


def test_the_secret_templates_placeholder_key_cannot_start_production() -> None:
    result = production_settings(secret_key=secret_template()["stringData"]["SECRET_KEY"])
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_kubectl_renders_the_base_with_the_roles_in_their_namespaces() -> None:
    rendered = subprocess.run(
        [required_tool("kubectl", "kubectl"), "kustomize", str(DEPLOY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert len(objects) == len(applied_objects())
    roles = {o["metadata"]["namespace"] for o in objects if o["kind"] == "Role"}
    assert roles == {config()["K8S_SANDBOX_NAMESPACE"], config()["KUBESCAPE_NAMESPACE"]}
    tag = kustomization()["images"][0]["newTag"]
    images = {
        c["image"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
        for c in containers(o["spec"]["template"]["spec"])
    }
    assert images == {f"{IMAGE}:{tag}"}
