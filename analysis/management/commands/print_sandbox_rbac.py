"""manage.py print_sandbox_rbac: the permissions the service needs, ready for kubectl.

Why a command rather than a YAML file in the repository: the objects are built
by ``analysis.sandbox.manifests`` from the same constants (API groups,
resources, verbs) the pipeline and the reconciler use, so what an operator
applies is exactly what the code calls — a file would drift. Prints nothing
secret and talks to no cluster:

    manage.py print_sandbox_rbac | kubectl apply -f -
"""

from __future__ import annotations

from typing import Any

import yaml
from django.conf import settings
from django.core.management.base import CommandParser

from analysis.sandbox.manifests import (
    DEFAULT_SERVICE_ACCOUNT,
    DEFAULT_SERVICE_ACCOUNT_NAMESPACE,
    rbac_objects,
)
from reliability.commands import CorrelatedCommand


class Command(CorrelatedCommand):
    help = (
        "Print the ServiceAccount, Roles, ClusterRoles and bindings the service needs "
        "(least privilege: sandbox Deployments/Services/NetworkPolicies, Kubescape results, "
        "the sandbox namespace and Kubescape's APIService) as multi-document YAML for "
        "'kubectl apply -f -'. Talks to no cluster."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--service-account",
            default=DEFAULT_SERVICE_ACCOUNT,
            help=f"the service's ServiceAccount (default {DEFAULT_SERVICE_ACCOUNT})",
        )
        parser.add_argument(
            "--service-account-namespace",
            default=DEFAULT_SERVICE_ACCOUNT_NAMESPACE,
            help=f"namespace the service runs in (default {DEFAULT_SERVICE_ACCOUNT_NAMESPACE})",
        )
        parser.add_argument(
            "--sandbox-namespace",
            default=None,
            help="where sandboxes run (default: K8S_SANDBOX_NAMESPACE)",
        )
        parser.add_argument(
            "--kubescape-namespace",
            default=None,
            help="where Kubescape stores its results (default: KUBESCAPE_NAMESPACE)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        objects = rbac_objects(
            sandbox_namespace=options["sandbox_namespace"] or settings.K8S_SANDBOX_NAMESPACE,
            kubescape_namespace=options["kubescape_namespace"] or settings.KUBESCAPE_NAMESPACE,
            service_account_name=options["service_account"],
            service_account_namespace=options["service_account_namespace"],
            apiservice=settings.KUBESCAPE_APISERVICE,
        )
        text = yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True).rstrip("\n")
        self.emit(options, {"objects": objects}, text)
