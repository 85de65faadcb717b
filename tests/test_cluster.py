"""Every Kubernetes call: timeout, retries on transient failures, the shared circuit, mapping."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from kubernetes import client

from analysis.exceptions import KubernetesError
from analysis.sandbox.client import (
    KubernetesUnreachableError,
    TransientKubernetesError,
    api_client,
    call,
)
from reliability.circuit import forget_breakers, get_breaker
from reliability.exceptions import ServiceUnavailableError
from tests.support.settings import override_reliability

SANDBOX = django_settings.K8S_SANDBOX_NAMESPACE
NAMESPACE_PATH = f"/api/v1/namespaces/{SANDBOX}"


@pytest.fixture
def breaker_settings(settings, clean_cache):
    settings.K8S_MAX_ATTEMPTS = 3
    breakers = django_settings.RELIABILITY["CIRCUIT_BREAKERS"]
    override_reliability(
        settings,
        CIRCUIT_BREAKERS={"kubernetes": {**breakers["kubernetes"], "failure_threshold": 4}},
    )
    forget_breakers()
    yield
    forget_breakers()


def read_namespace(sleeps: list[float]):
    return call(
        "read namespace",
        client.CoreV1Api(api_client()).read_namespace,
        SANDBOX,
        resource=f"namespaces/{SANDBOX}",
        retry_sleep=sleeps.append,
    )


pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("breaker_settings")]


def test_transient_500s_are_retried_until_they_recover(kube_api):
    kube_api.fail(NAMESPACE_PATH, 500, times=2)
    sleeps: list[float] = []
    namespace = read_namespace(sleeps)
    assert namespace.metadata.name == SANDBOX
    assert len(kube_api.requests_to(NAMESPACE_PATH)) == 3
    assert len(sleeps) == 2
    assert get_breaker("kubernetes").snapshot()["failures"] == 0  # the success reset it


def test_retry_after_of_a_429_is_honoured(kube_api):
    kube_api.fail(NAMESPACE_PATH, 429, times=1, retry_after=7)
    sleeps: list[float] = []
    read_namespace(sleeps)
    assert len(sleeps) == 1
    assert sleeps[0] >= 7


def test_a_404_is_an_answer_not_a_failure(kube_api):
    sleeps: list[float] = []
    with pytest.raises(KubernetesError) as raised:
        call(
            "read deployment",
            client.AppsV1Api(api_client()).read_namespaced_deployment,
            "nope",
            SANDBOX,
            resource="deployments/nope",
            retry_sleep=sleeps.append,
        )
    assert not isinstance(raised.value, TransientKubernetesError)
    assert raised.value.details == {
        "operation": "read deployment",
        "status_code": 404,
        "resource": "deployments/nope",
    }
    assert raised.value.status_code == 502
    assert sleeps == []
    assert get_breaker("kubernetes").snapshot()["failures"] == 0
    assert (
        call(
            "delete deployment",
            client.AppsV1Api(api_client()).delete_namespaced_deployment,
            "nope",
            SANDBOX,
            missing_ok=True,
        )
        is None
    )


def test_persistent_503s_open_the_circuit_and_then_no_request_is_sent(kube_api):
    kube_api.fail(NAMESPACE_PATH, 503)
    sleeps: list[float] = []
    with pytest.raises(TransientKubernetesError) as raised:
        read_namespace(sleeps)
    assert raised.value.details["status_code"] == 503
    assert len(kube_api.requests_to(NAMESPACE_PATH)) == 3  # K8S_MAX_ATTEMPTS

    with pytest.raises((TransientKubernetesError, ServiceUnavailableError)):
        read_namespace(sleeps)
    assert get_breaker("kubernetes").snapshot()["state"] == "open"
    seen = len(kube_api.requests_to(NAMESPACE_PATH))

    with pytest.raises(ServiceUnavailableError) as rejected:
        read_namespace(sleeps)
    assert rejected.value.details == {"service": "kubernetes", "reason": "circuit open"}
    assert len(kube_api.requests_to(NAMESPACE_PATH)) == seen


@pytest.mark.usefixtures("unreachable_cluster")
def test_an_unreachable_api_is_service_unavailable():
    sleeps: list[float] = []
    with pytest.raises(KubernetesUnreachableError) as raised:
        read_namespace(sleeps)
    assert raised.value.status_code == 503
    assert raised.value.details == {
        "service": "kubernetes",
        "reason": "API unreachable during read namespace",
    }
    assert len(sleeps) == 2
