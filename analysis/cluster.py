"""The Kubernetes API client: the only place that talks to the cluster.

Configuration is loaded on first use, never at import or start-up, so the
service boots without a cluster. urllib3's own retries are switched off:
retries and back-off are the reliability layer's decision, not the transport's.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import urllib3
from django.conf import settings
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

_lock = threading.Lock()
_api_client: client.ApiClient | None = None


def load_configuration() -> client.Configuration:
    configuration = client.Configuration()
    if settings.K8S_IN_CLUSTER:
        config.load_incluster_config(client_configuration=configuration)
    else:
        # persist_config=False: refreshed tokens are never written back to the operator's file.
        config.load_kube_config(
            config_file=_kubeconfig_path(),
            client_configuration=configuration,
            persist_config=False,
        )
    configuration.retries = urllib3.Retry(
        total=0, redirect=0, respect_retry_after_header=False, raise_on_status=False
    )
    return configuration


def api_client() -> client.ApiClient:
    """The process-wide client, built on first use."""
    global _api_client
    with _lock:
        if _api_client is None:
            _api_client = client.ApiClient(load_configuration())
        return _api_client


def reset_client() -> None:
    """Forget the client, e.g. after the kubeconfig changed."""
    global _api_client
    with _lock:
        if _api_client is not None:
            _api_client.close()
        _api_client = None


def _kubeconfig_path() -> str:
    candidates = [p for p in settings.KUBECONFIG.split(os.pathsep) if p]
    if not candidates:
        raise ConfigException("KUBECONFIG is empty")
    existing = [p for p in candidates if Path(p).expanduser().is_file()]
    return str(Path((existing or candidates)[0]).expanduser())
