"""The admin as an operator sees it: job list, filters, search, read-only detail, actions, keys."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.admin.templatetags.admin_urls import admin_urlname
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from analysis.api_keys import hash_secret, issue_key, verify_key
from analysis.models import AnalysisEvidence, AnalysisJob, ApiKey, MonthlyUsage, VexDocument
from analysis.profiles import normalize_config
from analysis.results import store_results
from analysis.sandbox import manifests
from analysis.status import JobStatus
from tests.conftest import make_job
from vexxy.celery import app as celery_app

pytestmark = pytest.mark.django_db

JOBS = reverse("admin:analysis_analysisjob_changelist")
KEYS = reverse("admin:analysis_apikey_changelist")
CHANGE_LINK = re.compile(r'href="/admin/analysis/analysisjob/([0-9a-f-]{36})/change/')
MESSAGE = re.compile(r'<li class="(\w+)">(.*?)</li>', re.S)
PRE = re.compile(r"<pre[^>]*>(.*?)</pre>", re.S)
PLAINTEXT = re.compile(r"<code>vx_([0-9a-f]{12})_([A-Za-z0-9_-]{43})</code>")
BADGE = '<span style="background:{};color:#fff;padding:2px 8px;border-radius:8px">{}</span>'


def admin_job(organization, **fields) -> AnalysisJob:
    return make_job(organization, **{"image_ref": "ghcr.io/acme/app:1.0", **fields})


def page(client, url: str, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode()


def listed(client, **params) -> set[str]:
    """Ids of the jobs the changelist shows, read from their change links."""
    return set(CHANGE_LINK.findall(page(client, JOBS, **params)))


def ids(*jobs: AnalysisJob) -> set[str]:
    return {str(job.pk) for job in jobs}


def cell(html: str, job: AnalysisJob, column: str) -> str:
    """The inner HTML of one column in the changelist row of ``job``."""
    (row,) = [row for row in html.split("<tr") if f"/{job.pk}/change/" in row]
    match = re.search(rf'<t[dh] class="field-{column}[^"]*">(.*?)</t[dh]>', row, re.S)
    assert match, f"no {column} column in {row}"
    return match.group(1)


def shown_messages(response) -> list[tuple[str, str]]:
    assert response.status_code == 200
    (shown,) = re.findall(r'<ul class="messagelist">(.*?)</ul>', response.content.decode(), re.S)
    return [(level, unescape(text)) for level, text in MESSAGE.findall(shown)]


def run_action(client, url: str, action: str, *objects) -> list[tuple[str, str]]:
    data = {"action": action, "_selected_action": [str(obj.pk) for obj in objects]}
    return shown_messages(client.post(url, data, follow=True))


def change_page(client, obj) -> str:
    return page(client, reverse(f"admin:analysis_{obj._meta.model_name}_change", args=[obj.pk]))


# --- job list ---------------------------------------------------------------------------------

COLOURS = {
    JobStatus.QUEUED: "#6c757d",
    JobStatus.RUNNING: "#0d6efd",
    JobStatus.ANALYZING: "#6f42c1",
    JobStatus.COMPLETE: "#198754",
    JobStatus.FAILED: "#dc3545",
    JobStatus.CANCELLED: "#fd7e14",
}


def test_job_list_shows_an_operators_columns(admin_client, organization):
    completed = timezone.now()
    job = admin_job(
        organization,
        status=JobStatus.FAILED,
        progress_percent=40,
        profile="comprehensive",
        image_ref="ghcr.io/acme/api:2.1",
        started_at=completed - timedelta(seconds=65),
        completed_at=completed,
        error_code="SANDBOX_ERROR",
    )
    waiting = admin_job(organization)
    html = page(admin_client, JOBS)
    assert cell(html, job, "short_id") == (
        f'<a href="/admin/analysis/analysisjob/{job.pk}/change/">{str(job.pk)[:8]}</a>'
    )
    assert cell(html, job, "status_badge") == BADGE.format("#dc3545", "Failed")
    assert cell(html, job, "progress") == "40%"
    assert cell(html, job, "profile") == "Comprehensive"
    assert cell(html, job, "organization") == "acme"
    assert (
        cell(html, job, "image") == '<span title="ghcr.io/acme/api:2.1">ghcr.io/acme/api:2.1</span>'
    )
    assert cell(html, job, "duration") == "1m 05s"
    assert cell(html, job, "error") == "SANDBOX_<wbr>ERROR"  # may wrap after the underscore
    moment = timezone.localtime(job.created_at)
    assert cell(html, job, "created") == (
        f'<time datetime="{moment.isoformat()}">{moment:%Y-%m-%d %H:%M}</time>'
    )
    assert (cell(html, waiting, "progress"), cell(html, waiting, "duration")) == ("0%", "-")
    assert cell(html, waiting, "error") == "-"
    assert cell(html, waiting, "status_badge") == BADGE.format("#6c757d", "Queued")


def test_a_long_image_reference_is_shortened_with_the_whole_in_its_title(
    admin_client, organization
):
    reference = "registry.example.com:5000/platform/team-a/services/payments-api:2024.11.30-rc.1"
    job = admin_job(organization, image_ref=reference)
    shown = cell(page(admin_client, JOBS), job, "image")
    assert shown == (f'<span title="{reference}">registry.example.com…api:2024.11.30-rc.1</span>')
    assert len(unescape(re.sub("<[^>]+>", "", shown))) == 40


def test_every_status_has_its_own_badge_colour(admin_client, organization):
    jobs = {status: admin_job(organization, status=status) for status in COLOURS}
    html = page(admin_client, JOBS)
    for status, job in jobs.items():
        assert cell(html, job, "status_badge") == BADGE.format(COLOURS[status], status.label)


def test_job_list_queries_do_not_grow_with_the_rows(admin_client, organization, other_organization):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            page(admin_client, JOBS)
        return len(captured)

    admin_job(organization)
    few = queries()
    for org in (organization, other_organization) * 3:
        admin_job(org, status=JobStatus.FAILED, error_code="SANDBOX_ERROR")
    assert queries() == few


# --- filters and search -----------------------------------------------------------------------

LONG_AGO = datetime(2023, 3, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def jobs(organization, other_organization) -> dict[str, AnalysisJob]:
    return {
        "acme_failed": admin_job(
            organization,
            status=JobStatus.FAILED,
            error_code="SANDBOX_ERROR",
            image_ref="ghcr.io/acme/api:1.0",
            image_digest="sha256:" + "a" * 64,
            request_id="req-alpha",
        ),
        "globex_complete": admin_job(
            other_organization,
            status=JobStatus.COMPLETE,
            profile="comprehensive",
            image_ref="docker.io/globex/web:2.0",
            image_digest="sha256:" + "b" * 64,
            request_id="req-bravo",
        ),
        "acme_old_failed": admin_job(
            organization,
            status=JobStatus.FAILED,
            profile="minimal",
            created_at=LONG_AGO,
            error_code="KUBESCAPE_ERROR",
            image_ref="quay.io/acme/worker:3.0",
            image_digest="sha256:" + "c" * 64,
            request_id="req-charlie",
        ),
        "globex_queued": admin_job(
            other_organization,
            image_ref="nginx:1.27",
            image_digest="sha256:" + "d" * 64,
            request_id="req-delta",
        ),
    }


def test_without_filters_every_job_is_listed(admin_client, jobs):
    assert listed(admin_client) == ids(*jobs.values())


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": "failed"}, {"acme_failed", "acme_old_failed"}),
        ({"status__exact": "queued"}, {"globex_queued"}),
        ({"profile__exact": "comprehensive"}, {"globex_complete"}),
        ({"profile__exact": "minimal"}, {"acme_old_failed"}),
        ({"organization__id__exact": "globex"}, {"globex_complete", "globex_queued"}),
        ({"error_code": "SANDBOX_ERROR"}, {"acme_failed"}),
        ({"error_code": "KUBESCAPE_ERROR"}, {"acme_old_failed"}),
        ({"created_at__year": "2023"}, {"acme_old_failed"}),
        (
            {"created_at__year": "2023", "created_at__month": "3", "created_at__day": "15"},
            {"acme_old_failed"},
        ),
        ({"created_at__year": "2023", "created_at__month": "3", "created_at__day": "16"}, set()),
        (
            {
                "status__exact": "failed",
                "organization__id__exact": "acme",
                "error_code": "SANDBOX_ERROR",
            },
            {"acme_failed"},
        ),
    ],
)
def test_filters_narrow_the_list(
    admin_client, jobs, organization, other_organization, params, expected
):
    org_ids = {"acme": organization.pk, "globex": other_organization.pk}
    if "organization__id__exact" in params:
        params = {**params, "organization__id__exact": org_ids[params["organization__id__exact"]]}
    assert listed(admin_client, **params) == ids(*(jobs[name] for name in expected))


def filter_link(html: str, label: str) -> str:
    (href,) = re.findall(rf'<a href="([^"]+)"[^>]*>{re.escape(label)}</a>', html)
    return unescape(href)


def test_created_filter_links_narrow_the_list(admin_client, jobs):
    html = page(admin_client, JOBS)
    recent = filter_link(html, "Past 7 days")
    assert "created_at__gte=" in recent
    assert set(CHANGE_LINK.findall(page(admin_client, JOBS + recent))) == ids(
        jobs["acme_failed"], jobs["globex_complete"], jobs["globex_queued"]
    )
    # the date hierarchy offers the year of the old job, and its link leads to it alone
    old_year = filter_link(html, "2023")
    assert set(CHANGE_LINK.findall(page(admin_client, JOBS + old_year))) == ids(
        jobs["acme_old_failed"]
    )


def test_failed_with_code_filter_offers_the_codes_in_use(admin_client, jobs):
    html = page(admin_client, JOBS)
    assert "By failed with code" in html
    for code in ("SANDBOX_ERROR", "KUBESCAPE_ERROR"):
        assert filter_link(html, code) == f"?error_code={code}"


@pytest.mark.parametrize(
    ("job", "term"),
    [
        ("acme_failed", lambda job: str(job.pk)),
        ("globex_queued", lambda job: str(job.pk).upper()),
        ("globex_complete", lambda job: str(job.pk)[:8]),
        ("globex_complete", lambda job: job.image_ref),
        ("acme_old_failed", lambda job: job.image_digest),
        ("globex_queued", lambda job: job.request_id),
    ],
    ids=["full-id", "upper-id", "short-id", "image-ref", "digest", "request-id"],
)
def test_search_finds_exactly_the_job(admin_client, jobs, job, term):
    assert listed(admin_client, q=term(jobs[job])) == ids(jobs[job])


# --- read-only detail -------------------------------------------------------------------------


RESULT = {
    "cve_id": "CVE-2024-0001",
    "status": "affected",
    "severity": "High",
    "package_name": "zlib",
}


def result(index: int) -> dict:
    return {**RESULT, "cve_id": f"CVE-2024-{index:05d}"}


@pytest.fixture
def finished_job(organization) -> AnalysisJob:
    job = admin_job(
        organization,
        status=JobStatus.COMPLETE,
        progress_percent=100,
        config={"analysis_duration": 300, "environment": {"DB_PASSWORD": "hunter2-secret"}},
        summary={"reachable": 2, "total": 5},
        error_details={"sandbox_id": "sbx-42", "phase": "deploy"},
    )
    store_results(job, [RESULT])
    vex = VexDocument.objects.create(
        job=job, document={"statements": []}, statement_counts={"affected": 2}
    )
    AnalysisJob.objects.filter(pk=job.pk).update(generated_vex_id=vex.pk)
    for kind, size, char in (("sbom", 2048, "e"), ("runtime_trace", 777, "f")):
        AnalysisEvidence.objects.create(
            job=job,
            evidence_type=kind,
            data=json.dumps({"kind": kind}),
            size_bytes=size,
            sha256=char * 64,
        )
    job.refresh_from_db()
    return job


def test_job_detail_pretty_prints_json_and_redacts_environment(admin_client, finished_job):
    html = change_page(admin_client, finished_job)
    blocks = [unescape(block) for block in PRE.findall(html)]
    for value in (
        finished_job.error_details,
        {"analysis_duration": 300, "environment": {"DB_PASSWORD": "[REDACTED]"}},
    ):
        assert json.dumps(value, indent=2, sort_keys=True) in blocks
    assert "hunter2-secret" not in html
    # summary and results are the report (tests/test_report.py), not JSON
    for value in (finished_job.summary, [RESULT]):
        assert json.dumps(value, indent=2, sort_keys=True) not in blocks
    assert '<section class="module vexxy-report" id="report"' in html


def test_job_detail_lists_evidence_and_links_the_vex(admin_client, finished_job):
    html = change_page(admin_client, finished_job)
    rows = [row for row in html.split("<tr") if 'class="field-sha256"' in row]
    shown = {
        (
            re.search(r'field-evidence_type">\s*<p>(.*?)</p>', row, re.S).group(1),
            re.search(r'field-sha256">\s*<p>(.*?)</p>', row, re.S).group(1),
            re.search(r'field-size_bytes">\s*<p>(.*?)</p>', row, re.S).group(1),
        )
        for row in rows
    }
    assert shown == {("sbom", "e" * 64, "2048"), ("runtime_trace", "f" * 64, "777")}
    vex_url = reverse("admin:analysis_vexdocument_change", args=[finished_job.generated_vex_id])
    download = reverse("admin:analysis_vexdocument_download", args=[finished_job.generated_vex_id])
    assert (
        f'<a href="{vex_url}">{finished_job.generated_vex_id}</a> · '
        f'<a href="{download}">Download (OpenVEX JSON)</a>'
    ) in html
    assert page(admin_client, vex_url)


def test_a_large_job_page_shows_a_bounded_slice_and_links_the_rest(admin_client, organization):
    """A 1000-result job with a 200 KB evidence document: the page holds 100 results, 4 KB."""
    job = admin_job(organization, status=JobStatus.COMPLETE, summary={"total": 1000})
    store_results(job, [result(index) for index in range(1000)])
    big = {"matches": [{"id": f"m-{index}", "text": "x" * 200} for index in range(1000)]}
    evidence = AnalysisEvidence.objects.create(
        job=job,
        evidence_type="full_manifest",
        data=json.dumps(big),
        size_bytes=210_000,
        sha256="a" * 64,
    )

    html = change_page(admin_client, job)

    assert ">CVE-2024-00099</a>" in html
    assert "CVE-2024-00100" not in html
    assert "Results 1\N{EN DASH}100 of 1000, most severe first." in html
    assert "page 1 of 10" in html
    assert "first 4096 characters" in html
    assert len(html) < 150_000
    results_url = reverse("admin:analysis_job_results", args=[job.pk])
    evidence_url = reverse("admin:analysis_analysisevidence_download", args=[evidence.pk])
    assert f'href="{results_url}"' in html
    assert f'href="{evidence_url}"' in html

    downloaded = admin_client.get(results_url)
    assert downloaded["Content-Disposition"] == f'attachment; filename="results-{job.pk}.json"'
    assert json.loads(b"".join(downloaded.streaming_content)) == [
        result(index) for index in range(1000)
    ]
    assert json.loads(b"".join(admin_client.get(evidence_url).streaming_content)) == big


def nested(depth: int) -> dict:
    root: dict = {}
    node = root
    for _ in range(depth):
        node["child"] = {}
        node = node["child"]
    return root


def test_deep_json_is_clipped_and_deep_evidence_never_decoded(admin_client, organization):
    """Evidence 900 levels deep (stored before uploads were bounded) is shown as text."""
    job = admin_job(organization, status=JobStatus.FAILED, error_details=nested(40))
    evidence = AnalysisEvidence.objects.create(
        job=job,
        evidence_type="full_manifest",
        data=json.dumps(nested(900)),
        size_bytes=9000,
        sha256="b" * 64,
    )

    html = unescape(change_page(admin_client, job))

    assert '"child": "… (1 keys)"' in html
    assert '{"child": {"child":' in html.replace(" ", "").replace('{"child":', '{"child": ')
    url = reverse("admin:analysis_analysisevidence_download", args=[evidence.pk])
    text = b"".join(admin_client.get(url).streaming_content).decode()
    assert text.replace(" ", "") == '{"child":' * 900 + "{}" + "}" * 900


def test_vex_document_page_shows_the_start_and_links_the_download(admin_client, finished_job):
    vex = VexDocument.objects.get(pk=finished_job.generated_vex_id)
    VexDocument.objects.filter(pk=vex.pk).update(
        document={"statements": [{"vulnerability": {"name": f"CVE-{n}"}} for n in range(2000)]}
    )
    html = page(admin_client, reverse("admin:analysis_vexdocument_change", args=[vex.pk]))
    download = reverse("admin:analysis_vexdocument_download", args=[vex.pk])
    assert f'href="{download}"' in html
    assert "first 4096 characters" in html
    assert len(html) < 40_000
    body = json.loads(b"".join(admin_client.get(download).streaming_content))
    assert len(body["statements"]) == 2000


def test_downloads_need_an_admin_login(client, finished_job):
    url = reverse("admin:analysis_job_results", args=[finished_job.pk])
    response = client.get(url)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_job_detail_offers_nothing_to_edit(admin_client, finished_job):
    html = change_page(admin_client, finished_job)
    form = html.split('id="analysisjob_form"', 1)[1]
    editable = re.findall(r'<input(?![^>]*type="hidden")[^>]*>|<select|<textarea', form)
    assert editable == []  # no fields, no Save buttons that could only fail


def test_posting_to_job_detail_changes_nothing(admin_client, finished_job):
    url = reverse("admin:analysis_analysisjob_change", args=[finished_job.pk])
    response = admin_client.post(
        url, {"status": "queued", "image_ref": "evil:latest", "priority": 1, "_save": "Save"}
    )
    assert response.status_code == 403
    job = AnalysisJob.objects.get(pk=finished_job.pk)
    assert (job.status, job.image_ref, job.priority) == (
        JobStatus.COMPLETE,
        finished_job.image_ref,
        5,
    )


# --- actions ----------------------------------------------------------------------------------


def test_cancel_cancels_active_jobs_and_names_the_ones_it_cannot(admin_client, organization):
    queued = admin_job(organization)
    finished_at = timezone.now() - timedelta(minutes=5)
    complete = admin_job(organization, status=JobStatus.COMPLETE, completed_at=finished_at)
    shown = run_action(admin_client, JOBS, "cancel_jobs", queued, complete)
    queued.refresh_from_db()
    complete.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED
    assert queued.cancelled_by == "admin:admin"
    assert queued.cancelled_at is not None
    assert (complete.status, complete.completed_at, complete.cancelled_by) == (
        JobStatus.COMPLETE,
        finished_at,
        "",
    )
    assert ("success", "1 job(s) cancelled.") in shown
    (warning,) = [text for level, text in shown if level == "warning"]
    assert str(complete.pk) in warning
    assert "is complete" in warning


@pytest.mark.usefixtures("sandbox_ready")
def test_retry_requeues_failed_jobs_and_refuses_queued_ones(admin_client, organization):
    failed = admin_job(
        organization,
        status=JobStatus.FAILED,
        error_code="SANDBOX_ERROR",
        error_message="boom",
        progress_percent=60,
        completed_at=timezone.now(),
    )
    queued = admin_job(organization, celery_task_id="task-1")
    shown = run_action(admin_client, JOBS, "retry_jobs", failed, queued)
    failed.refresh_from_db()
    queued.refresh_from_db()
    assert (failed.status, failed.error_code, failed.progress_percent, failed.completed_at) == (
        JobStatus.QUEUED,
        "",
        0,
        None,
    )
    assert (queued.status, queued.celery_task_id) == (JobStatus.QUEUED, "task-1")
    assert ("success", "1 job(s) requeued.") in shown
    (warning,) = [text for level, text in shown if level == "warning"]
    assert str(queued.pk) in warning
    assert "is queued" in warning


@pytest.mark.usefixtures("sandbox_disabled")
def test_retry_without_a_sandbox_is_refused(admin_client, organization):
    failed = admin_job(organization, status=JobStatus.FAILED, error_code="SANDBOX_ERROR")
    shown = run_action(admin_client, JOBS, "retry_jobs", failed)
    failed.refresh_from_db()
    assert (failed.status, failed.error_code) == (JobStatus.FAILED, "SANDBOX_ERROR")
    assert [level for level, _ in shown] == ["warning"]
    assert str(failed.pk)[:8] in shown[0][1].lower()


# --- organizations and API keys ---------------------------------------------------------------


def test_organization_list_and_add_page_render(admin_client, organization, other_organization):
    html = page(admin_client, reverse("admin:analysis_organization_changelist"))
    assert "Acme" in html
    assert "Globex" in html
    add = page(admin_client, reverse("admin:analysis_organization_add"))
    for field in ("name", "slug", "monthly_analysis_quota", "is_active"):
        assert f'name="{field}"' in add


def test_organization_lists_its_keys_without_secrets(
    admin_client, organization, other_organization
):
    issued = [issue_key(organization, name) for name in ("ci-pipeline", "nightly-scan")]
    foreign = issue_key(other_organization, "globex-key")
    html = change_page(admin_client, organization)
    for key in issued:
        assert key.api_key.name in html
        assert key.api_key.prefix in html
        assert key.plaintext.split("_", 2)[2] not in html
        assert key.api_key.secret_hash not in html
    assert "globex-key" not in html
    assert foreign.api_key.prefix not in html


def test_a_new_key_is_shown_once_and_stored_hashed(admin_client, organization):
    add = page(admin_client, reverse("admin:analysis_apikey_add"))
    assert 'name="secret_hash"' not in add
    assert 'name="prefix"' not in add
    response = admin_client.post(
        reverse("admin:analysis_apikey_add"),
        {"organization": organization.pk, "name": "deploy-bot"},
        follow=True,
    )
    html = response.content.decode()
    (match,) = PLAINTEXT.findall(html)
    prefix, secret = match
    key = ApiKey.objects.get()
    assert (key.organization, key.name, key.prefix) == (organization, "deploy-bot", prefix)
    assert key.secret_hash == hash_secret(secret)
    assert secret not in key.secret_hash
    assert any(
        level == "success" and f"vx_{prefix}_{secret}" in text
        for level, text in shown_messages(response)
    )
    assert verify_key(f"vx_{prefix}_{secret}") == key
    for later in (page(admin_client, KEYS), change_page(admin_client, key)):
        assert secret not in later


def test_key_detail_shows_no_secret(admin_client, organization):
    issued = issue_key(organization, "ci-pipeline")
    html = change_page(admin_client, issued.api_key)
    assert issued.api_key.prefix in html
    assert issued.plaintext.split("_", 2)[2] not in html
    assert issued.api_key.secret_hash not in html
    assert 'name="secret_hash"' not in html


def test_revoke_sets_revoked_at_on_live_keys_only(admin_client, organization):
    live = issue_key(organization, "live").api_key
    earlier = timezone.now() - timedelta(days=3)
    revoked = issue_key(organization, "old").api_key
    ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=earlier)
    untouched = issue_key(organization, "untouched").api_key
    shown = run_action(admin_client, KEYS, "revoke_keys", live, revoked)
    assert ("success", "1 key(s) revoked.") in shown
    live.refresh_from_db()
    revoked.refresh_from_db()
    untouched.refresh_from_db()
    assert live.revoked_at is not None
    assert revoked.revoked_at == earlier
    assert untouched.revoked_at is None


# --- what cannot be added by hand -------------------------------------------------------------


@pytest.fixture
def produced(organization):
    job = admin_job(organization, status=JobStatus.COMPLETE)
    VexDocument.objects.create(
        job=job, document={"statements": []}, statement_counts={"not_affected": 7}
    )
    MonthlyUsage.objects.create(
        organization=organization, month=LONG_AGO.date().replace(day=1), analyses=12
    )


@pytest.mark.parametrize(
    ("model", "shows", "selectable"),
    [
        # no action applies to VEX documents or usage (they cannot be deleted): no checkboxes
        ("vexdocument", "not_affected", 0),
        ("monthlyusage", "12", 0),
        ("analysisjob", "Complete", 1),
    ],
)
def test_generated_records_are_listed_but_not_added_by_hand(
    admin_client, produced, model, shows, selectable
):
    html = page(admin_client, reverse(f"admin:analysis_{model}_changelist"))
    assert html.count('class="action-select"') == selectable
    assert shows in html
    add_url = reverse(f"admin:analysis_{model}_add")
    assert add_url not in html
    assert admin_client.get(add_url).status_code == 403


SAVE_BUTTONS = re.compile(r'name="_(save|continue|addanother|saveasnew)"')


@pytest.mark.parametrize("model", ["vexdocument", "monthlyusage", "analysisjob"])
def test_read_only_pages_offer_no_save_and_refuse_a_post(admin_client, produced, model):
    obj = {
        "vexdocument": VexDocument,
        "monthlyusage": MonthlyUsage,
        "analysisjob": AnalysisJob,
    }[model].objects.get()
    html = change_page(admin_client, obj)
    assert SAVE_BUTTONS.findall(html) == []
    assert "Close" in html
    url = reverse(f"admin:analysis_{model}_change", args=[obj.pk])
    assert admin_client.post(url, {"_save": "Save", "analyses": 0}).status_code == 403


def test_every_admin_that_can_save_has_a_field_to_edit(rf, admin_user):
    request = rf.get("/admin/")
    request.user = admin_user
    for model, model_admin in admin.site._registry.items():
        if not model_admin.has_change_permission(request):
            continue
        fields = set(flatten_fieldsets(model_admin.get_fieldsets(request)))
        assert fields - set(model_admin.get_readonly_fields(request)), model._meta.label


def test_other_apps_records_are_view_only(admin_client, organization):
    attempt = AccessAttempt.objects.create(
        username="mallory", ip_address="203.0.113.9", failures_since_start=3, path_info="/"
    )
    task = TaskResult.objects.create(task_id="t-1", task_name="analysis.run", status="SUCCESS")
    for obj in (attempt, task):
        html = page(admin_client, reverse(admin_urlname(obj._meta, "change"), args=[obj.pk]))
        assert SAVE_BUTTONS.findall(html) == []
        assert admin_client.get(reverse(admin_urlname(obj._meta, "add"))).status_code == 403
    # deleting an attempt is how an operator lifts a lockout: still offered
    delete = reverse(admin_urlname(attempt._meta, "delete"), args=[attempt.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not AccessAttempt.objects.exists()


@pytest.mark.parametrize("model", ["organization", "apikey"])
def test_editable_pages_keep_their_save_buttons(admin_client, organization, model):
    obj = organization if model == "organization" else issue_key(organization, "ci").api_key
    assert "save" in SAVE_BUTTONS.findall(change_page(admin_client, obj))


def test_a_vex_document_goes_only_with_its_job(admin_client, finished_job):
    vex = VexDocument.objects.get(pk=finished_job.generated_vex_id)
    html = change_page(admin_client, vex)
    delete_url = reverse("admin:analysis_vexdocument_delete", args=[vex.pk])
    assert delete_url not in html
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:analysis_vexdocument_changelist")
    refused = admin_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [str(vex.pk)], "post": "yes"}
    )
    assert refused.status_code in (200, 302)
    assert VexDocument.objects.filter(pk=vex.pk).exists()
    # it is reached from its job, and leads back to it
    job_url = reverse("admin:analysis_analysisjob_change", args=[finished_job.pk])
    assert f'href="{job_url}"' in html
    assert f'href="{reverse("admin:analysis_vexdocument_change", args=[vex.pk])}"' in (
        change_page(admin_client, finished_job)
    )


RECONCILE = reverse("admin:analysis_job_reconcile")


def test_reconcile_removes_orphaned_sandbox_objects_cluster_wide(
    admin_client, organization, sandbox_ready
):
    done = admin_job(organization, status=JobStatus.COMPLETE, config=normalize_config("custom", {}))
    sandbox_ready.put(
        "apps/v1/deployments", manifests.deployment(done, namespace="vexxy-sandbox", resources={})
    )
    response = admin_client.post(RECONCILE)
    assert (response.status_code, response["Location"]) == (302, JOBS)
    assert shown_messages(admin_client.get(JOBS)) == [
        ("success", "Deleted 1 orphaned sandbox object(s).")
    ]
    assert (
        sandbox_ready.get("apps/v1/deployments", manifests.sandbox_name(done.pk), "vexxy-sandbox")
        is None
    )


def test_reconcile_without_cluster_credentials_is_queued_for_a_worker(
    admin_client, settings, unconsumed_queue
):
    settings.SANDBOX_ENABLED = settings.SANDBOX_HEALTH_FROM_WORKERS = True

    shown = shown_messages(admin_client.post(RECONCILE, follow=True))

    assert shown == [
        ("success", "Reconcile queued for a worker; its result is in the worker's log.")
    ]
    with celery_app.connection_for_read() as connection:
        message = connection.SimpleQueue(unconsumed_queue).get(timeout=10)
    assert message.headers["task"] == "analysis.reconcile_sandboxes"


@pytest.mark.usefixtures("sandbox_disabled")
def test_reconcile_without_a_sandbox_says_so(admin_client):
    shown = shown_messages(admin_client.post(RECONCILE, follow=True))
    assert shown == [("warning", "Sandbox disabled: nothing to reconcile.")]


def test_reconcile_is_a_button_on_the_job_list_not_an_action(admin_client):
    html = page(admin_client, JOBS)
    (form,) = re.findall(r'<ul class="object-tools">.*?</ul>', html, re.S)
    assert f'<form method="post" action="{RECONCILE}">' in form
    assert 'name="csrfmiddlewaretoken"' in form
    assert ">Reconcile sandboxes</button>" in form
    assert 'value="reconcile_sandboxes"' not in html  # no longer in the actions menu


def test_reconcile_refuses_get(admin_client):
    assert admin_client.get(RECONCILE).status_code == 405


@pytest.mark.usefixtures("sandbox_disabled")
def test_reconcile_needs_the_csrf_token(admin_user):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(RECONCILE).status_code == 403
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page(strict, JOBS)).group(1)
    response = strict.post(RECONCILE, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302


@pytest.mark.usefixtures("sandbox_disabled")
def test_reconcile_needs_permission_to_change_jobs(client, settings):
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_analysisjob"))
    client.force_login(viewer)
    assert "Reconcile sandboxes" not in page(client, JOBS)
    assert client.post(RECONCILE).status_code == 403

    viewer.user_permissions.add(Permission.objects.get(codename="change_analysisjob"))
    viewer = User.objects.get(pk=viewer.pk)  # permissions are cached on the instance
    client.force_login(viewer)
    assert "Reconcile sandboxes" in page(client, JOBS)
    assert shown_messages(client.post(RECONCILE, follow=True)) == [
        ("warning", "Sandbox disabled: nothing to reconcile.")
    ]


def test_reconcile_needs_an_admin_login(client):
    response = client.post(RECONCILE)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


# --- the admin names the service --------------------------------------------------------------


@pytest.mark.parametrize("url", [reverse("admin:index"), JOBS])
def test_header_and_title_name_the_service(admin_client, url):
    html = page(admin_client, url)
    assert '<a href="/admin/">VEXxy Premium Service</a>' in html
    assert re.search(r"<title>[^<]*\| VEXxy Premium Service</title>", html)
    assert "Django administration" not in html
    assert "Django site admin" not in html


def test_the_login_page_names_the_service(client):
    html = page(client, reverse("admin:login"))
    assert "VEXxy Premium Service" in html
    assert "Django administration" not in html


# --- the evidence does not widen the page -----------------------------------------------------


def test_evidence_previews_are_folded_and_wrap(admin_client, finished_job):
    html = change_page(admin_client, finished_job)
    rows = [row for row in html.split("<tr") if 'class="field-data_view"' in row]
    assert len(rows) == 2
    for row in rows:
        assert '<details style="max-width:40em"><summary>Preview</summary><pre' in row
        assert "overflow-wrap:anywhere" in row
