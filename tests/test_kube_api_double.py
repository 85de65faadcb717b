"""The Kubernetes API double (tests/support/kube_api.py) with the official client over HTTP."""

from __future__ import annotations

import json
import socket

import pytest
import urllib3
from django.conf import settings
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.support.kube_api import KubeApiServer

APISERVICE = settings.KUBESCAPE_APISERVICE
SANDBOX = settings.K8S_SANDBOX_NAMESPACE


@pytest.fixture
def k8s(kube_api):
    """The official client, configured from the double's kubeconfig like analysis.sandbox.client."""
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(kube_api.kubeconfig), client_configuration=configuration
    )
    configuration.retries = urllib3.Retry(
        total=0, redirect=0, respect_retry_after_header=False, raise_on_status=False
    )
    with client.ApiClient(configuration) as api_client:
        yield api_client


def deployment(name: str) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
            },
        },
    }


def test_stops_cleanly():
    with KubeApiServer() as kube:
        port = int(kube.url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass


def test_version(k8s):
    version = client.VersionApi(k8s).get_code()
    assert (version.major, version.minor, version.git_version) == ("1", "33", "v1.33.4")


def test_kubescape_apiservice_is_available(kube_api, k8s):
    kube_api.with_kubescape(available=True)
    service = client.ApiregistrationV1Api(k8s).read_api_service(APISERVICE)
    assert service.spec.group == "spdx.softwarecomposition.kubescape.io"
    assert [(c.type, c.status) for c in service.status.conditions] == [("Available", "True")]


def test_unavailable_kubescape(kube_api, k8s):
    kube_api.with_kubescape(available=False)
    service = client.ApiregistrationV1Api(k8s).read_api_service(APISERVICE)
    assert [(c.type, c.status) for c in service.status.conditions] == [("Available", "False")]
    with pytest.raises(ApiException) as error:
        client.CustomObjectsApi(k8s).list_namespaced_custom_object(
            "spdx.softwarecomposition.kubescape.io", "v1beta1", "kubescape", "sbomsyfts"
        )
    assert error.value.status == 503


def test_deployment_create_read_replace_delete(kube_api, k8s):
    apps = client.AppsV1Api(k8s)

    created, code, _ = apps.create_namespaced_deployment_with_http_info(SANDBOX, deployment("web"))
    assert code == 201
    meta = created.metadata
    assert (meta.name, meta.namespace) == ("web", SANDBOX)
    assert meta.uid
    assert meta.resource_version
    assert meta.creation_timestamp

    read = apps.read_namespaced_deployment("web", SANDBOX)
    assert read.metadata.uid == meta.uid
    assert read.spec.template.spec.containers[0].image == "nginx:1.27"

    read.spec.replicas = 3
    replaced = apps.replace_namespaced_deployment("web", SANDBOX, read)
    assert replaced.spec.replicas == 3
    assert replaced.metadata.uid == meta.uid
    assert replaced.metadata.resource_version != meta.resource_version
    with pytest.raises(ApiException) as stale:  # optimistic concurrency, as a real server
        apps.replace_namespaced_deployment("web", SANDBOX, read)
    assert stale.value.status == 409

    status = apps.delete_namespaced_deployment("web", SANDBOX)
    assert status["status"] == "Success"
    assert status["details"] == {
        "name": "web",
        "group": "apps",
        "kind": "deployments",
        "uid": meta.uid,
    }
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment("web", SANDBOX)
    assert gone.value.status == 404
    assert json.loads(gone.value.body)["message"] == 'deployments.apps "web" not found'
    assert kube_api.get("apps/v1/deployments", "web", SANDBOX) is None


def test_namespaces(kube_api, k8s):
    core = client.CoreV1Api(k8s)
    sandbox = core.read_namespace(SANDBOX)
    assert (sandbox.metadata.name, sandbox.status.phase) == (SANDBOX, "Active")

    created, code, _ = core.create_namespace_with_http_info({"metadata": {"name": "scratch"}})
    assert code == 201
    assert core.read_namespace("scratch").metadata.uid == created.metadata.uid
    with pytest.raises(ApiException) as missing:
        core.read_namespace("missing")
    assert missing.value.status == 404
    with pytest.raises(ApiException) as no_namespace:
        client.AppsV1Api(k8s).create_namespaced_deployment("missing", deployment("web"))
    assert no_namespace.value.status == 404


def test_label_selectors_are_applied(kube_api, k8s):
    for name, tier in (("a", "web"), ("b", "db"), ("c", None)):
        labels = {"tier": tier} if tier else {}
        kube_api.put(
            "v1/pods", {"metadata": {"name": name, "namespace": SANDBOX, "labels": labels}}
        )
    core = client.CoreV1Api(k8s)

    def names(selector: str) -> list[str]:
        pods = core.list_namespaced_pod(SANDBOX, label_selector=selector).items
        return sorted(pod.metadata.name for pod in pods)

    assert names("tier=web") == ["a"]
    assert names("tier!=web") == ["b", "c"]
    assert names("tier in (web,db)") == ["a", "b"]
    assert names("tier") == ["a", "b"]
    assert names("!tier") == ["c"]
    assert names("") == ["a", "b", "c"]


def test_kubescape_storage_lists_metadata_only_and_ignores_selectors(kube_api, k8s):
    kube_api.with_kubescape()
    group, plural = "spdx.softwarecomposition.kubescape.io", "vulnerabilitymanifests"
    kube_api.put(
        f"{group}/v1beta1/{plural}",
        {
            "metadata": {"name": "m", "namespace": "kubescape", "labels": {"a": "b"}},
            "spec": {"payload": {"matches": []}},
        },
    )
    objects = client.CustomObjectsApi(k8s)

    listed = objects.list_namespaced_custom_object(
        group, "v1beta1", "kubescape", plural, label_selector="a=other"
    )["items"]
    assert [(item["metadata"]["name"], "spec" in item) for item in listed] == [("m", False)]
    full = objects.list_namespaced_custom_object(
        group, "v1beta1", "kubescape", plural, resource_version="fullSpec"
    )["items"]
    assert full[0]["spec"] == {"payload": {"matches": []}}


def test_injected_500_surfaces_as_api_exception(kube_api, k8s):
    kube_api.fail(f"/api/v1/namespaces/{SANDBOX}", 500, "etcd is down")
    with pytest.raises(ApiException) as error:
        client.CoreV1Api(k8s).read_namespace(SANDBOX)
    assert error.value.status == 500
    assert json.loads(error.value.body)["message"] == "etcd is down"


def test_injected_429_is_not_retried(kube_api, k8s):
    path = f"/apis/apps/v1/namespaces/{SANDBOX}/deployments"
    kube_api.fail(path, 429, method="POST", retry_after=7, times=1)
    apps = client.AppsV1Api(k8s)

    with pytest.raises(ApiException) as error:
        apps.create_namespaced_deployment(SANDBOX, deployment("web"))

    assert error.value.status == 429
    assert error.value.headers["Retry-After"] == "7"
    assert len(kube_api.requests_to(path)) == 1
    assert kube_api.get("apps/v1/deployments", "web", SANDBOX) is None  # a 429 changes nothing
    assert apps.create_namespaced_deployment(SANDBOX, deployment("web")).metadata.uid


def test_injected_404_for_a_resource(kube_api, k8s):
    kube_api.fail("apiregistration.k8s.io/v1/apiservices", 404)
    kube_api.with_kubescape()
    with pytest.raises(ApiException) as error:
        client.ApiregistrationV1Api(k8s).read_api_service(APISERVICE)
    assert error.value.status == 404


def test_the_request_log(kube_api, k8s):
    client.CoreV1Api(k8s).list_namespaced_pod(SANDBOX, label_selector="app=web")
    client.CoreV1Api(k8s).create_namespace({"metadata": {"name": "scratch"}})

    listed, created = kube_api.requests[-2:]
    assert (listed.method, listed.path) == ("GET", f"/api/v1/namespaces/{SANDBOX}/pods")
    assert listed.query == {"labelSelector": "app=web"}
    assert listed.body is None
    assert (created.method, created.path) == ("POST", "/api/v1/namespaces")
    assert created.body == {"metadata": {"name": "scratch"}}


def test_health_is_healthy_against_the_double(client, kube_api, clean_cache):
    kube_api.with_kubescape(available=True)

    response = client.get("/health")

    checks = response.json()["checks"]
    assert response.status_code == 200
    assert checks["kubernetes"]["status"] == "healthy"
    assert checks["kubescape"]["status"] == "healthy"
    assert checks["kubescape"]["apiservice"] == APISERVICE


def test_health_without_kubescape(client, kube_api, clean_cache):
    response = client.get("/health")

    checks = response.json()["checks"]
    assert response.status_code == 503
    assert checks["kubernetes"]["status"] == "healthy"
    assert checks["kubescape"]["status"] == "unhealthy"
    assert "not found: install the Kubescape operator" in checks["kubescape"]["reason"]
    assert sorted((r.method, r.path) for r in kube_api.requests[-2:]) == [
        ("GET", f"/apis/apiregistration.k8s.io/v1/apiservices/{APISERVICE}"),
        ("GET", "/version/"),
    ]
