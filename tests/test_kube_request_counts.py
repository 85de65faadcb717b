"""Kubernetes API requests per analysis do not grow with other workloads' Kubescape objects.

One analysis runs against the API double with 0 and with 500 decoys (tests/support/sandbox_world.py
``seed_decoys``: objects of other workloads in the namespaces and kinds the pipeline reads, named
and labelled as Kubescape writes them); the requests it makes, by verb and kind of path, and its
result must be the same. The reconciler's Kubescape listing is checked the same way.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

from analysis.models import AnalysisJob, VexDocument
from analysis.sandbox import reconcile
from analysis.sandbox.reconcile import reconcile_sandboxes
from tests.conftest import make_job
from tests.support.kube_api import KubeApiServer, SeenRequest, running_kube_api
from tests.support.sandbox_world import PROFILES, SandboxWorld, seed_decoys
from tests.support.settings import small_pipeline_budgets
from tests.test_pipeline import run_pipeline, sandbox_job

pytestmark = pytest.mark.django_db

DECOYS = 500
KUBESCAPE_COLLECTION = re.compile(r"kubescape\.io/v1beta1/(namespaces/[^/]+/)?[^/?]+(\?|$)")


@pytest.fixture(autouse=True)
def small_budgets(settings):
    """As in test_pipeline: the analysis waits on a fake clock, in polls of at most 5 s."""
    small_pipeline_budgets(settings)


def request_kind(world: SandboxWorld, request: SeenRequest) -> str:
    """``VERB path?params``: this job's names as placeholders, parameter names only."""
    query = "&".join(sorted(request.query))
    return f"{request.method} {world.pattern(request.path)}" + (f"?{query}" if query else "")


def outcome(world: SandboxWorld) -> dict[str, Any]:
    """What the analysis produced, without what differs from job to job (ids, names, times)."""
    job = world.job
    statements = VexDocument.objects.get(job=job).document["statements"]
    return {
        "status": (job.status, job.error_code),
        "summary": job.summary,
        "results": sorted(
            (r["cve_id"], r["package_name"], r["status"])
            for r in job.results.values_list("data", flat=True)
        ),
        "statements": sorted((s["vulnerability"]["name"], s["status"]) for s in statements),
        "evidence": sorted(job.evidence.values_list("evidence_type", flat=True)),
        "remaining": world.remaining(),
    }


def one_analysis(kube: KubeApiServer, organization, decoys: int) -> tuple[Counter, dict]:
    cache.clear()  # the health checks are cached: each run makes its own
    world = SandboxWorld(kube, sandbox_job(organization))
    assert seed_decoys(kube, decoys) == decoys
    world.script(*world.happy())
    before = len(kube.requests)

    assert run_pipeline(world) is None, world.job.error_details

    made = Counter(request_kind(world, r) for r in kube.requests[before:])
    return made, outcome(world)


def analysis_with_decoys(settings, tmp_path: Path, organization, decoys: int):
    folder = tmp_path / f"decoys-{decoys}"
    folder.mkdir()
    with running_kube_api(settings, folder) as kube:
        kube.with_kubescape(available=True)
        return one_analysis(kube, organization, decoys)


def show(title: str, counts: dict[int, Counter]) -> None:
    print(
        f"\n{title}: " + ", ".join(f"{sum(c.values())} with {n} decoys" for n, c in counts.items())
    )
    for kind in sorted(set().union(*counts.values())):
        print("  " + "  ".join(f"{c[kind]:3d}" for c in counts.values()) + f"  {kind}")


def test_requests_per_analysis_do_not_grow_with_decoys(settings, tmp_path, organization):
    quiet, quiet_outcome = analysis_with_decoys(settings, tmp_path, organization, 0)
    busy, busy_outcome = analysis_with_decoys(settings, tmp_path, organization, DECOYS)

    show("requests per analysis", {0: quiet, DECOYS: busy})
    assert busy == quiet
    assert busy_outcome == quiet_outcome
    assert quiet_outcome["status"] == ("complete", "")
    assert quiet_outcome["remaining"] == []
    # Never a collection read of Kubescape's kinds: objects by exact name only.
    assert not [k for k in quiet if KUBESCAPE_COLLECTION.search(k)]


def test_a_second_analysis_among_the_first_ones_leftovers_costs_the_same(
    sandbox_ready, organization
):
    """Same server: the first run's shared full manifest and the decoys stay around."""
    first, first_outcome = one_analysis(sandbox_ready, organization, 0)
    second, second_outcome = one_analysis(sandbox_ready, organization, DECOYS)

    assert second == first
    assert second_outcome == first_outcome


# -- the reconciler ----------------------------------------------------------------------------


def orphaned_sandbox(kube: KubeApiServer, organization) -> SandboxWorld:
    """A finished job whose ContainerProfile cleanup could not delete."""
    job = make_job(organization, status="complete", celery_task_id="t")
    world = SandboxWorld(kube, job)
    AnalysisJob.objects.filter(pk=job.pk).update(sandbox_name=world.name)
    world.profile("completed")
    return world


def reconcile_requests(kube: KubeApiServer) -> tuple[list[SeenRequest], dict[str, Any]]:
    before = len(kube.requests)
    report = reconcile_sandboxes()
    return kube.requests[before:], report


def profile_lists(requests: list[SeenRequest]) -> list[SeenRequest]:
    return [r for r in requests if r.method == "GET" and r.path.endswith("/containerprofiles")]


@pytest.mark.parametrize("selectors", [False, True], ids=["storage-0.0.297", "newer-storage"])
def test_the_reconciler_lists_profiles_by_our_selector_and_reads_every_page(
    sandbox_ready, organization, monkeypatch, selectors
):
    sandbox_ready.kubescape_applies_selectors(selectors)
    monkeypatch.setattr(reconcile, "PROFILE_PAGE_SIZE", 20)  # 50 decoy profiles: 3 pages
    first = orphaned_sandbox(sandbox_ready, organization)  # on the first page
    seed_decoys(sandbox_ready, DECOYS)
    last = orphaned_sandbox(sandbox_ready, organization)  # on the last page

    requests, report = reconcile_requests(sandbox_ready)

    ours = [f"containerprofiles/{world.slug}" for world in (first, last)]
    assert report["deleted"] == ours  # deleting while paging skipped nothing
    assert [sandbox_ready.get(PROFILES, w.slug, w.ns) for w in (first, last)] == [None, None]
    lists = profile_lists(requests)
    assert {r.query["labelSelector"] for r in lists} == {reconcile.PROFILE_SELECTOR}
    # v0.0.297 ignores the selector: 52 profiles in pages of 20; newer storage fills one page
    # with our two.
    assert len(lists) == (1 if selectors else 3)


def test_reconciler_requests_do_not_grow_with_decoys_where_storage_selects(
    sandbox_ready, organization
):
    sandbox_ready.kubescape_applies_selectors()
    ours = orphaned_sandbox(sandbox_ready, organization)
    quiet, quiet_report = reconcile_requests(sandbox_ready)
    ours.profile("completed")  # left over again
    seed_decoys(sandbox_ready, DECOYS)

    busy, busy_report = reconcile_requests(sandbox_ready)

    print(f"\nreconciler requests: {len(quiet)} with 0 decoys, {len(busy)} with {DECOYS}")
    assert [(r.method, r.path) for r in busy] == [(r.method, r.path) for r in quiet]
    assert busy_report == quiet_report
    assert quiet_report["deleted"] == [f"containerprofiles/{ours.slug}"]
