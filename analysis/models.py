"""Tenants, their API keys, analysis jobs and what the jobs produce."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.utils import timezone

from analysis.status import JobStatus
from analysis.vex.cyclonedx import cyclonedx_vex


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    monthly_analysis_quota = models.PositiveIntegerField(
        default=100, help_text="Analyses this organization may submit per calendar month (UTC)."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.slug


class MonthlyUsage(models.Model):
    """Analyses counted against an organization's quota for one month."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="usage")
    month = models.DateField(help_text="First day of the month, UTC.")
    analyses = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "month"], name="usage_once_per_month")
        ]
        ordering = ["-month"]

    def __str__(self) -> str:
        return f"{self.organization} {self.month:%Y-%m}: {self.analyses}"


class ApiKey(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["organization", "name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


OUTCOME_FIELDS = ("summary", "execution_profile")


class JobQuerySet(models.QuerySet):
    def for_organization(self, organization: Organization) -> JobQuerySet:
        return self.filter(organization=organization)

    def without_outcome(self) -> JobQuerySet:
        """Without the columns only the results view shows: what lists and status checks read."""
        return self.defer(*OUTCOME_FIELDS)

    def make_pending(self) -> int:
        """Back to "queued, not published": ``dispatch_pending_jobs`` publishes these anew."""
        return self.filter(status=JobStatus.QUEUED).update(dispatched_at=None, celery_task_id="")


class AnalysisJob(models.Model):
    class Profile(models.TextChoices):
        MINIMAL = "minimal", "Minimal"
        STANDARD = "standard", "Standard"
        COMPREHENSIVE = "comprehensive", "Comprehensive"
        CUSTOM = "custom", "Custom"

    class Origin(models.TextChoices):
        SANDBOX = "sandbox", "Sandbox run"
        IMPORT = "import", "Imported Kubescape results"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="jobs")
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.SANDBOX)
    image_ref = models.CharField(max_length=512)
    image_digest = models.CharField(max_length=71)
    image_digests = models.JSONField(
        default=list,
        blank=True,
        help_text="Every digest the image is known by (submitted, the pod's imageID, "
        "Kubescape's); the VEX names the image once per digest.",
    )
    sbom_id = models.CharField(max_length=200, blank=True)
    profile = models.CharField(max_length=16, choices=Profile.choices, default=Profile.STANDARD)
    config = models.JSONField(default=dict, help_text="The normalized configuration.")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    priority = models.SmallIntegerField(default=5)
    progress_percent = models.PositiveSmallIntegerField(default=0)
    current_phase = models.CharField(max_length=32, blank=True)

    request_id = models.CharField(max_length=200, blank=True, help_text="Of the submission.")
    submitted_by = models.CharField(max_length=200, blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When the task was published; empty = dispatch pending."
    )
    sandbox_name = models.CharField(max_length=63, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.CharField(max_length=200, blank=True)

    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    error_details = models.JSONField(default=dict, blank=True)

    summary = models.JSONField(null=True, blank=True)
    execution_profile = models.JSONField(null=True, blank=True)
    generated_vex_id = models.UUIDField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="job_org_created"),
            models.Index(fields=["organization", "status", "-created_at"], name="job_org_status"),
            models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat"),
            models.Index(fields=["status", "dispatched_at"], name="job_dispatch"),
            models.Index(fields=["image_digest"], name="job_digest"),
            models.Index(fields=["request_id"], name="job_request_id"),
            models.Index(fields=["status", "completed_at"], name="job_status_completed"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.image_ref} [{self.status}]"

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at:
            return None
        return ((self.completed_at or timezone.now()) - self.started_at).total_seconds()


class SandboxSlot(models.Model):
    """One of ``MAX_CONCURRENT_SANDBOXES`` places for a sandbox (analysis/sandbox/slots.py).

    Held by one run of a job, named by its Celery task id, from before the run's claim
    until its sandbox is deleted; free when ``task_id`` is empty.
    """

    number = models.PositiveSmallIntegerField(primary_key=True)
    task_id = models.CharField(max_length=255, blank=True)
    job_id = models.UUIDField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["task_id"],
                condition=~models.Q(task_id=""),
                name="sandbox_slot_one_per_run",
            )
        ]

    def __str__(self) -> str:
        return f"slot {self.number}: {self.task_id or 'free'}"


class AnalysisEvidence(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(AnalysisJob, on_delete=models.CASCADE, related_name="evidence")
    evidence_type = models.CharField(max_length=64)
    # Text, not JSON: it is kept and handed out, never queried, and PostgreSQL would parse a
    # manifest of 100 MB into jsonb (slower than reading it, and capped at 256 MB).
    data = models.TextField(help_text="The document as canonical JSON text (sorted keys).")
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "analysis evidence"
        indexes = [models.Index(fields=["job", "created_at"], name="evidence_job_created")]

    def __str__(self) -> str:
        return f"{self.evidence_type} ({self.size_bytes} bytes)"


class ReachabilityResult(models.Model):
    """One (vulnerability, package) verdict of a complete job, in the order the VEX lists it.

    A row each, not one JSON list on the job: a job may have 100,000 of them, and
    lists, status checks and pages of results must not read them all.
    """

    job = models.ForeignKey(AnalysisJob, on_delete=models.CASCADE, related_name="results")
    position = models.PositiveIntegerField()
    # Text: identifiers come from uploaded documents, whose lengths nothing bounds.
    cve_id = models.TextField()
    package_name = models.TextField()
    status = models.CharField(max_length=32)
    severity = models.CharField(max_length=16)
    data = models.JSONField(help_text="The result as the API shows it.")

    class Meta:
        ordering = ["job", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="result_position_once")
        ]
        indexes = [
            models.Index(fields=["job", "status", "position"], name="result_job_status"),
            models.Index(fields=["job", "severity", "position"], name="result_job_severity"),
        ]

    def __str__(self) -> str:
        return f"{self.cve_id} {self.package_name}: {self.status}"


class VexDocument(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(AnalysisJob, on_delete=models.CASCADE, related_name="vex_documents")
    document = models.JSONField(help_text="OpenVEX v0.2.0.")
    cyclonedx = models.JSONField(
        null=True,
        blank=True,
        editable=False,
        help_text="The same VEX as a CycloneDX 1.6 BOM, built when first asked for.",
    )
    statement_counts = models.JSONField(default=dict, help_text="Statements by status.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "VEX document"

    def __str__(self) -> str:
        return str(self.id)

    def as_cyclonedx(self) -> dict[str, Any]:
        """The CycloneDX form: built and validated once (about 2 ms a statement), then kept."""
        if self.cyclonedx is None:
            self.cyclonedx = cyclonedx_vex(self.document, self.pk)
            VexDocument.objects.filter(pk=self.pk, cyclonedx__isnull=True).update(
                cyclonedx=self.cyclonedx
            )
        return self.cyclonedx
