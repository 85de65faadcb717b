"""Operator screens: jobs, their evidence and VEX documents, organizations and API keys."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast, Length, Substr
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST
from django_celery_results.admin import GroupResultAdmin, TaskResultAdmin
from django_celery_results.models import GroupResult, TaskResult

from analysis import api_keys, jobs
from analysis.api.streaming import column_text, streamed_json
from analysis.api_keys import fill_new_key
from analysis.models import (
    AnalysisEvidence,
    AnalysisJob,
    ApiKey,
    MonthlyUsage,
    Organization,
    VexDocument,
)
from analysis.profiles import redacted
from analysis.report.pages import admin_report, report_response
from analysis.report.table import Filters
from analysis.sandbox.reconcile import reconcile_sandboxes
from analysis.status import JobStatus
from analysis.tasks import reconcile_sandboxes_task
from reliability.exceptions import VexxyException

logger = logging.getLogger(__name__)

SERVICE_NAME = "VEXxy Premium Service"
admin.site.site_header = SERVICE_NAME
admin.site.site_title = SERVICE_NAME
admin.site.index_title = "Operations"
# The job list's columns need the width: the app list is one click away (breadcrumbs, index).
admin.site.enable_nav_sidebar = False

STATUS_COLOURS = {
    JobStatus.QUEUED: "#6c757d",
    JobStatus.RUNNING: "#0d6efd",
    JobStatus.ANALYZING: "#6f42c1",
    JobStatus.COMPLETE: "#198754",
    JobStatus.FAILED: "#dc3545",
    JobStatus.CANCELLED: "#fd7e14",
}


PREVIEW_CHARACTERS = 4096
IMAGE_COLUMN_CHARACTERS = 40  # the job list fits a 1400 px window


def pretty_json(value: Any) -> SafeString:
    """Indented JSON of a small value; deep or wide values are clipped, never recursed into."""
    if value in (None, "", {}, []):
        return format_html("<em>{}</em>", "empty")
    return preformatted(
        json.dumps(clipped(value), indent=2, sort_keys=True, default=str, ensure_ascii=False)
    )


def preformatted(text: str) -> SafeString:
    # Long unbroken tokens (digests, minified JSON) wrap instead of widening the page.
    return format_html(
        '<pre style="white-space:pre-wrap;overflow-wrap:anywhere;max-width:100%;'
        'max-height:40em;overflow:auto">{}</pre>',
        text,
    )


def clipped(value: Any, depth: int = 12, width: int = 100) -> Any:
    """``value`` cut below ``depth`` levels and after ``width`` items per level."""
    if isinstance(value, dict):
        if depth == 0:
            return f"… ({len(value)} keys)"
        items = list(value.items())
        kept = {str(key): clipped(item, depth - 1, width) for key, item in items[:width]}
        if len(items) > width:
            kept["…"] = f"{len(items) - width} more keys"
        return kept
    if isinstance(value, list | tuple):
        if depth == 0:
            return f"… ({len(value)} items)"
        kept_items = [clipped(item, depth - 1, width) for item in value[:width]]
        if len(value) > width:
            kept_items.append(f"… {len(value) - width} more items")
        return kept_items
    return value


def text_preview(text: str | None, total_bytes: int, download_url: str) -> SafeString:
    """The start of a large JSON text, folded away, with a link to all of it."""
    if not text:
        return format_html("<em>{}</em>", "empty")
    more = ""
    if total_bytes > len(text):
        more = f"\n… (first {len(text)} characters of about {total_bytes} bytes)"
    return format_html(
        '<details style="max-width:40em"><summary>Preview</summary>{}</details>'
        '<a href="{}">Download all (JSON)</a>',
        preformatted(text + more),
        download_url,
    )


def shortened(text: str, length: int) -> str:
    """``text`` cut in the middle: an image's registry and its tag both stay visible."""
    if len(text) <= length:
        return text
    tail = (length - 1) // 2
    return text[: length - 1 - tail] + "…" + text[-tail:]


def json_head(field: str) -> Substr:
    """The first characters of a JSON column, cut in the database: the rest is never read."""
    return Substr(Cast(field, TextField()), 1, PREVIEW_CHARACTERS)


def attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def json_column_download(rows: QuerySet, field: str, filename: str) -> StreamingHttpResponse:
    """The JSON column ``field`` of the one row of ``rows``, as a streamed attachment."""
    text = column_text(rows, field)
    if text is None:
        raise Http404("No such object.")
    return streamed_json(text, "application/json", filename)


def results_json(job: AnalysisJob) -> Iterator[str]:
    """All of a job's results as one JSON list, written a row at a time."""
    yield "["
    rows = job.results.order_by("position").values_list("data", flat=True)
    for index, data in enumerate(rows.iterator(chunk_size=1000)):
        yield ("," if index else "") + json.dumps(data)
    yield "]"


class ErrorCodeFilter(admin.SimpleListFilter):
    title = "failed with code"
    parameter_name = "error_code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        codes = (
            AnalysisJob.objects.exclude(error_code="")
            .order_by("error_code")
            .values_list("error_code", flat=True)
            .distinct()
        )
        return [(code, code) for code in codes]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(error_code=self.value()) if self.value() else queryset


class EvidenceInline(admin.TabularInline):
    model = AnalysisEvidence
    extra = 0
    can_delete = False
    fields = ["evidence_type", "description", "size_bytes", "sha256", "created_at", "data_view"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("data").annotate(data_head=json_head("data"))

    @admin.display(description="data (first 4 KB)")
    def data_view(self, evidence: AnalysisEvidence) -> SafeString:
        url = reverse("admin:analysis_analysisevidence_download", args=[evidence.pk])
        return text_preview(evidence.data_head, evidence.size_bytes, url)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AnalysisJob)
class AnalysisJobAdmin(admin.ModelAdmin):
    list_display = [
        "short_id",
        "status_badge",
        "progress",
        "profile",
        "organization",
        "image",
        "duration",
        "error",
        "created",
    ]
    list_filter = ["status", "profile", "organization", "created_at", ErrorCodeFilter]
    search_fields = ["id", "image_ref", "image_digest", "request_id"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    inlines = [EvidenceInline]
    actions = ["cancel_jobs", "retry_jobs"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "organization",
                    "status_badge",
                    "progress_percent",
                    "current_phase",
                    "vex_link",
                ]
            },
        ),
        (
            "Image",
            {
                "fields": [
                    "image_ref",
                    "image_digest",
                    "sbom_id",
                    "profile",
                    "priority",
                    "config_view",
                ]
            },
        ),
        (
            "Execution",
            {
                "fields": [
                    "request_id",
                    "submitted_by",
                    "celery_task_id",
                    "dispatched_at",
                    "sandbox_name",
                    "attempts",
                    "heartbeat_at",
                    "created_at",
                    "started_at",
                    "completed_at",
                    "cancelled_at",
                    "cancelled_by",
                ]
            },
        ),
        ("Error", {"fields": ["error_code", "error_message", "error_details_view"]}),
        # The results are the report after the first fieldset (change_form.html).
        ("Execution profile", {"fields": ["execution_profile_view"], "classes": ["collapse"]}),
    ]

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<uuid:object_id>/results.json",
                wrap(self.download_results),
                name="analysis_job_results",
            ),
            path(
                "<uuid:object_id>/report.html",
                wrap(self.download_report),
                name="analysis_job_report",
            ),
            path(
                "evidence/<uuid:evidence_id>/data.json",
                wrap(self.download_evidence),
                name="analysis_analysisevidence_download",
            ),
            # admin_view protects it against CSRF; require_POST refuses GET with 405.
            path("reconcile/", wrap(require_POST(self.reconcile)), name="analysis_job_reconcile"),
            *super().get_urls(),
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: AnalysisJob | None = None,
    ) -> TemplateResponse:
        if obj is not None:
            context["report"] = self.report_context(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def report_context(self, request: HttpRequest, job: AnalysisJob) -> dict[str, Any]:
        if job.status != JobStatus.COMPLETE:
            return {"unavailable": f"Results appear when the job is complete; it is {job.status}."}
        urls = {
            "results_json": reverse("admin:analysis_job_results", args=[job.pk]),
            "report": reverse("admin:analysis_job_report", args=[job.pk]),
        }
        return admin_report(job, request.GET, urls)

    def download_report(self, request: HttpRequest, object_id: UUID) -> StreamingHttpResponse:
        """The standalone report (as the API sends it), filtered like the page."""
        job = get_object_or_404(AnalysisJob.objects.select_related("organization"), pk=object_id)
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        if job.status != JobStatus.COMPLETE:
            raise Http404("The job is not complete: it has no report.")
        return report_response(job, Filters.known(request.GET), download=True)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_reconcile": self.can_reconcile(request)}
        return super().changelist_view(request, extra_context)

    def can_reconcile(self, request: HttpRequest) -> bool:
        # Jobs are view-only here (has_change_permission), so the model permission decides.
        return request.user.has_perm("analysis.change_analysisjob")

    def reconcile(self, request: HttpRequest) -> HttpResponseRedirect:
        """Delete orphaned sandbox objects, cluster-wide, like ``manage.py reconcile_sandboxes``."""
        if not self.can_reconcile(request):
            raise PermissionDenied
        self._reconcile(request)
        return HttpResponseRedirect(reverse("admin:analysis_analysisjob_changelist"))

    def download_results(self, request: HttpRequest, object_id: UUID) -> StreamingHttpResponse:
        job = get_object_or_404(AnalysisJob.objects.only("id"), pk=object_id)
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        return StreamingHttpResponse(
            results_json(job),
            content_type="application/json",
            headers=attachment(f"results-{job.pk}.json"),
        )

    def download_evidence(self, request: HttpRequest, evidence_id: UUID) -> StreamingHttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        evidence = AnalysisEvidence.objects.filter(pk=evidence_id)
        return json_column_download(evidence, "data", f"evidence-{evidence_id}.json")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field for _, options in self.fieldsets for field in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # View-only: state changes go through the actions, which apply the status rules.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting would drop evidence and leave a running task; cleanup_jobs does it safely.
        return False

    @admin.display(description="id", ordering="id")
    def short_id(self, job: AnalysisJob) -> str:
        return str(job.pk)[:8]

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: AnalysisJob) -> SafeString:
        return format_html(
            '<span style="background:{};color:#fff;padding:2px 8px;border-radius:8px">{}</span>',
            STATUS_COLOURS.get(job.status, "#6c757d"),
            job.get_status_display(),
        )

    @admin.display(description="image", ordering="image_ref")
    def image(self, job: AnalysisJob) -> SafeString:
        return format_html(
            '<span title="{}">{}</span>',
            job.image_ref,
            shortened(job.image_ref, IMAGE_COLUMN_CHARACTERS),
        )

    @admin.display(description="error code", ordering="error_code")
    def error(self, job: AnalysisJob) -> SafeString | str:
        # May wrap after each underscore: EXTERNAL_SERVICE_ERROR is wider than its column.
        if not job.error_code:
            return "-"
        parts = job.error_code.split("_")
        return format_html_join(format_html("{}<wbr>", "_"), "{}", ((part,) for part in parts))

    @admin.display(description="created", ordering="created_at")
    def created(self, job: AnalysisJob) -> SafeString:
        moment = timezone.localtime(job.created_at)
        return format_html(
            '<time datetime="{}">{} {}</time>',
            moment.isoformat(),
            moment.strftime("%Y-%m-%d"),
            moment.strftime("%H:%M"),
        )

    @admin.display(description="progress", ordering="progress_percent")
    def progress(self, job: AnalysisJob) -> str:
        return f"{job.progress_percent}%"

    @admin.display(description="duration")
    def duration(self, job: AnalysisJob) -> str:
        seconds = job.duration_seconds
        return "-" if seconds is None else f"{int(seconds // 60)}m {int(seconds % 60):02d}s"

    @admin.display(description="VEX")
    def vex_link(self, job: AnalysisJob) -> SafeString | str:
        if not job.generated_vex_id:
            return "-"
        url = reverse("admin:analysis_vexdocument_change", args=[job.generated_vex_id])
        download = reverse("admin:analysis_vexdocument_download", args=[job.generated_vex_id])
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">Download (OpenVEX JSON)</a>',
            url,
            job.generated_vex_id,
            download,
        )

    @admin.display(description="config")
    def config_view(self, job: AnalysisJob) -> SafeString:
        return pretty_json(redacted(job.config))

    @admin.display(description="error details")
    def error_details_view(self, job: AnalysisJob) -> SafeString:
        return pretty_json(job.error_details)

    @admin.display(description="execution profile")
    def execution_profile_view(self, job: AnalysisJob) -> SafeString:
        return pretty_json(job.execution_profile)

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._apply(request, queryset, jobs.cancel, "cancelled")

    @admin.action(description="Retry selected jobs")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._apply(request, queryset, jobs.retry, "requeued")

    def _reconcile(self, request: HttpRequest) -> None:
        if not settings.SANDBOX_ENABLED:
            self.message_user(request, "Sandbox disabled: nothing to reconcile.", messages.WARNING)
            return
        if settings.SANDBOX_HEALTH_FROM_WORKERS:
            self._reconcile_on_a_worker(request)
            return
        try:
            report = reconcile_sandboxes()
        except VexxyException as error:
            self.message_user(request, f"Reconcile failed: {error.message}", messages.ERROR)
            return
        self.message_user(
            request,
            f"Deleted {len(report['deleted'])} orphaned sandbox object(s).",
            messages.SUCCESS,
        )
        for failure in report["failures"]:
            self.message_user(request, f"Could not delete {failure}", messages.WARNING)

    def _reconcile_on_a_worker(self, request: HttpRequest) -> None:
        """This process has no cluster credentials (web pods in Kubernetes): a worker has."""
        try:
            reconcile_sandboxes_task.delay()
        except Exception as error:
            logger.warning(
                "Could not queue reconcile_sandboxes",
                extra={"error_type": type(error).__name__},
            )
            self.message_user(
                request, "Reconcile not queued: the broker is unavailable.", messages.ERROR
            )
            return
        self.message_user(
            request,
            "Reconcile queued for a worker; its result is in the worker's log.",
            messages.SUCCESS,
        )

    def _apply(self, request: HttpRequest, queryset: QuerySet, operation, verb: str) -> None:
        done, refused = 0, []
        actor = f"admin:{request.user.get_username()}"
        for job in queryset:
            try:
                operation(job, actor)
            except VexxyException as error:
                refused.append(f"{str(job.pk)[:8]}: {error.message}")
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} job(s) {verb}.", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.WARNING)


@admin.register(VexDocument)
class VexDocumentAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "statement_counts", "created_at"]
    search_fields = ["id", "job__id", "job__image_ref"]
    readonly_fields = ["id", "job", "statement_counts", "created_at", "document_view"]
    exclude = ["document", "cyclonedx"]
    list_select_related = ["job"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("document", "cyclonedx")

    def get_urls(self) -> list[URLPattern]:
        download = self.admin_site.admin_view(self.download)
        return [
            path("<uuid:object_id>/document.json", download, name="analysis_vexdocument_download"),
            *super().get_urls(),
        ]

    def download(self, request: HttpRequest, object_id: UUID) -> StreamingHttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        document = VexDocument.objects.filter(pk=object_id)
        return json_column_download(document, "document", f"vex-{object_id}.json")

    @admin.display(description="document (OpenVEX)")
    def document_view(self, vex: VexDocument) -> SafeString:
        head, size = (
            VexDocument.objects.filter(pk=vex.pk)
            .values_list(json_head("document"), Length(Cast("document", TextField())))
            .get()
        )
        url = reverse("admin:analysis_vexdocument_download", args=[vex.pk])
        return text_preview(head, size, url)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The job's results name it (generated_vex_id): it goes only with its job.
        return False


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = ["name", "prefix", "created_at", "last_used_at"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "monthly_analysis_quota", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ApiKeyInline]


class ApiKeyCreationForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["organization", "name", "expires_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["organization", "revoked_at"]
    search_fields = ["name", "prefix", "organization__slug"]
    actions = ["revoke_keys"]

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        if obj is None:
            kwargs["form"] = ApiKeyCreationForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["organization", "name", "expires_at"]
        return [
            "organization",
            "name",
            "prefix",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return ["organization", "prefix", "created_at", "last_used_at"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        plaintext = fill_new_key(obj)
        obj.save()
        self.message_user(
            request,
            format_html("New API key (shown once, store it now): <code>{}</code>", plaintext),
            messages.SUCCESS,
        )

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = api_keys.revoke_keys(queryset)
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(admin.ModelAdmin):
    list_display = ["organization", "month", "analyses"]
    list_filter = ["organization"]
    readonly_fields = ["organization", "month", "analyses"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # What was counted against the quota; an organization's quota is changed on it instead.
        return False


# --- other apps' records: listed and viewed, never edited ----------------------------------------


class ViewOnly:
    """Mixed into an admin that shows every field read-only: no Add, no Save."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def view_only(model: type[models.Model], model_admin: type[admin.ModelAdmin]) -> None:
    """Register ``model`` again, view-only. Deleting stays: deleting an axes attempt lifts a
    lockout, and task results may be pruned."""
    if admin.site.is_registered(model):
        admin.site.unregister(model)
        admin.site.register(
            model, type(f"ViewOnly{model_admin.__name__}", (ViewOnly, model_admin), {})
        )


view_only(TaskResult, TaskResultAdmin)
view_only(GroupResult, GroupResultAdmin)
view_only(AccessAttempt, AccessAttemptAdmin)
view_only(AccessLog, AccessLogAdmin)
view_only(AccessFailureLog, AccessFailureLogAdmin)
