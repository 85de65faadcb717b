"""reconcile_sandboxes: what the pipeline could not delete is found and deleted later."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from analysis.models import AnalysisJob
from analysis.profiles import normalize_config
from analysis.sandbox import manifests
from tests.conftest import make_job
from tests.support.sandbox_world import (
    DEPLOYMENTS,
    IMAGE_DIGEST,
    IMAGE_REF,
    MANIFESTS,
    NETWORK_POLICIES,
    SERVICES,
    SandboxWorld,
)

pytestmark = pytest.mark.django_db


def job_with_sandbox(organization, kube, status: str) -> SandboxWorld:
    job = make_job(
        organization,
        image_ref=IMAGE_REF,
        image_digest=IMAGE_DIGEST,
        config=normalize_config("minimal", {"ports": [8080]}),
        status=status,
        started_at=timezone.now(),
        celery_task_id="t",
    )
    world = SandboxWorld(kube, job)
    AnalysisJob.objects.filter(pk=job.pk).update(sandbox_name=world.name)
    ns = world.ns
    kube.put(DEPLOYMENTS, manifests.deployment(job, namespace=ns, resources={}))
    kube.put(SERVICES, manifests.service(job, namespace=ns))
    kube.put(NETWORK_POLICIES, manifests.network_policy(job, namespace=ns))
    world.completed()
    world.publish()
    return world


def reconcile(*args: str) -> dict:
    out = StringIO()
    call_command("reconcile_sandboxes", "--json", *args, stdout=out)
    report = json.loads(out.getvalue())
    report.pop("request_id")
    return report


def test_orphans_are_deleted_exactly_as_the_dry_run_said(organization, sandbox_ready):
    done = job_with_sandbox(organization, sandbox_ready, "complete")
    running = job_with_sandbox(organization, sandbox_ready, "running")
    existing = [
        (resource, name)
        for resource, ns, name in done.instance_objects()
        if sandbox_ready.get(resource, name, ns) is not None
    ]
    orphan_names = {
        f"{kind}/{done.name}" for kind in ("deployments", "services", "networkpolicies")
    } | {f"{resource.rsplit('/', 1)[-1]}/{name}" for resource, name in existing}
    assert len(existing) == 3  # profile, summary, relevant manifest

    planned = reconcile("--dry-run")
    assert set(planned["deleted"]) == orphan_names
    assert planned["failures"] == []
    assert done.remaining()  # nothing deleted yet

    assert set(reconcile()["deleted"]) == orphan_names
    assert done.remaining() == []
    assert len(running.remaining()) == 3 + 3  # workload + profile, summary, relevant manifest
    assert sandbox_ready.get(MANIFESTS, done.image_slug, done.ks) is not None  # shared
    assert reconcile("--dry-run")["deleted"] == []


def test_a_sandbox_without_a_job_is_an_orphan(organization, sandbox_ready):
    world = job_with_sandbox(organization, sandbox_ready, "running")
    AnalysisJob.objects.filter(pk=world.job.pk).delete()
    assert f"deployments/{world.name}" in reconcile()["deleted"]
    assert world.remaining() == []


@pytest.mark.parametrize("dry_run", [True, False])
def test_with_the_sandbox_disabled_there_is_nothing_to_do(settings, dry_run):
    settings.SANDBOX_ENABLED = False
    assert reconcile(*(["--dry-run"] if dry_run else [])) == {
        "deleted": [],
        "failures": [],
        "dry_run": dry_run,
        "sandbox_enabled": False,
    }
