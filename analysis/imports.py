"""Import of existing Kubescape results: a complete job without any cluster."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from analysis import metrics, quota
from analysis.evidence import store_evidence
from analysis.models import AnalysisJob, Organization
from analysis.profiles import normalize_config
from analysis.results import Evidence, build_for, record
from analysis.status import JobStatus
from reliability.correlation import get_request_id
from reliability.documents import Bounds, collector_paused

logger = logging.getLogger(__name__)


def document_bounds() -> Bounds:
    """What one imported document may hold (each of the body's parts, or one uploaded file)."""
    return Bounds(
        max_depth=settings.MAX_IMPORT_DEPTH,
        max_values=settings.MAX_IMPORT_VALUES,
        max_bytes=settings.MAX_IMPORT_BODY_BYTES,
    )


def import_results(
    organization: Organization,
    image_ref: str,
    image_digest: str,
    evidence: Evidence,
    *,
    completion: str,
    submitted_by: str,
) -> AnalysisJob:
    """Build results and VEX from ``evidence``; counts against the monthly quota."""
    with collector_paused():  # a large parsed document alive: full collections walk all of it
        parsed = evidence.parsed()
        with transaction.atomic():
            quota.consume(organization)
            now = timezone.now()
            job = AnalysisJob.objects.create(
                organization=organization,
                origin=AnalysisJob.Origin.IMPORT,
                image_ref=image_ref,
                image_digest=image_digest,
                profile=AnalysisJob.Profile.CUSTOM,
                config=normalize_config("custom", {}),
                status=JobStatus.COMPLETE,
                request_id=get_request_id() or "",
                submitted_by=submitted_by,
                started_at=now,
                current_phase="import",
            )
            for kind, data in evidence.items():
                store_evidence(job, kind, data, f"imported {kind.replace('_', ' ')}")
            fields = record(job, build_for(job, parsed, completion), completion)
            AnalysisJob.objects.filter(pk=job.pk).update(**fields)
            job.refresh_from_db()
            metrics.job_submitted(job)
            metrics.job_finished(job)
    logger.info(
        "Imported Kubescape results as job %s",
        job.pk,
        extra={
            "job_id": str(job.pk),
            "organization": organization.slug,
            "statements": job.summary["total_statements"],
        },
    )
    return job
