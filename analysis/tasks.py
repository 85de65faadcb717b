"""Celery tasks of the analysis app."""

from __future__ import annotations

import logging

from celery import shared_task

from reliability.exceptions import InvalidJobStateError

from . import jobs
from .models import AnalysisJob

logger = logging.getLogger("analysis.tasks")


@shared_task(
    bind=True,
    name="analysis.run_analysis",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def run_analysis(self, job_id: str) -> None:
    """Run one job. A redelivered or duplicate message finds the job claimed and stops."""
    job = AnalysisJob.objects.filter(pk=job_id).first()
    if job is None:
        logger.warning(
            "Job %s no longer exists; dropping its task", job_id, extra={"job_id": job_id}
        )
        return
    if not jobs.claim(job, self.request.id):
        logger.info(
            "Job %s is %s; not running it again",
            job_id,
            job.status,
            extra={"job_id": job_id, "status": job.status},
        )
        return
    from .pipeline import run_pipeline

    try:
        run_pipeline(job)
    except Exception as exc:
        logger.exception("Job %s failed", job_id, extra={"job_id": job_id})
        try:
            jobs.fail(job, exc)
        except InvalidJobStateError as conflict:
            # Cancelled meanwhile: the cancel wins, nothing to record.
            logger.info(
                "Job %s left as %s",
                job_id,
                conflict.details["current_state"],
                extra={"job_id": job_id},
            )
