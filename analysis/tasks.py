"""Celery tasks of the analysis app."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from django.conf import settings

from analysis import jobs
from analysis.dispatch import RUN_ANALYSIS
from analysis.exceptions import AnalysisTimeoutError, InvalidJobStateError, WorkerLostError
from analysis.models import AnalysisJob
from analysis.sandbox import slots
from analysis.sandbox.client import TRANSIENT
from analysis.sandbox.pipeline import JobCancelled, Pipeline, SandboxDisabledError
from analysis.status import ACTIVE
from reliability.exceptions import ServiceUnavailableError
from reliability.locks import cache_lock

logger = logging.getLogger(__name__)

# Worth another attempt of the whole job: the cluster failed, not the image.
RETRIED_ERRORS = (*TRANSIENT, ServiceUnavailableError)


@shared_task(
    bind=True,
    name=RUN_ANALYSIS,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,
)
def run_analysis(self, job_id: str) -> None:
    """Run one job. A redelivered or duplicate message finds the job claimed and stops."""
    job = AnalysisJob.objects.filter(pk=job_id).first()
    if job is None:
        logger.warning(
            "Job %s no longer exists; dropping its task", job_id, extra={"job_id": job_id}
        )
        return
    task_id = self.request.id
    if _startable(job, task_id) and not slots.acquire(job.pk, task_id):
        _wait_for_slot(self, job)
        return
    try:
        _run(self, job)
    finally:
        # After the pipeline's cleanup: the sandbox is gone (or left to the reconciler).
        slots.release(task_id)


def _startable(job: AnalysisJob, task_id: str) -> bool:
    """Would start a sandbox: the sandbox is on and the job is this task's to run."""
    return settings.SANDBOX_ENABLED and job.status in ACTIVE and job.celery_task_id == task_id


def _run(task, job: AnalysisJob) -> None:
    job_id = str(job.pk)
    if not jobs.claim(job, task.request.id):
        logger.info(
            "Job %s is %s; not running it again",
            job_id,
            job.status,
            extra={"job_id": job_id, "status": job.status},
        )
        return
    if job.attempts > settings.ANALYSIS_MAX_ATTEMPTS:
        # The lost attempts may have left a sandbox: delete it before giving up.
        Pipeline(job).cleanup(assume_deployed=True)
        _fail(job, WorkerLostError(job.attempts - 1))
        return
    pipeline = Pipeline(job)
    try:
        pipeline.run()
    except (JobCancelled, InvalidJobStateError):
        # Cancelled, or taken over by another run: this task's sandbox is removed, nothing else.
        logger.info(
            "Job %s is no longer this task's; sandbox removed", job_id, extra={"job_id": job_id}
        )
    except SoftTimeLimitExceeded:
        _fail(job, AnalysisTimeoutError(job.pk, pipeline.phase, pipeline.budget))
    except Exception as error:
        if _transient(error) and job.attempts < settings.ANALYSIS_MAX_ATTEMPTS:
            _retry_later(task, job, error)
            return
        logger.exception(
            "Job %s failed in %s",
            job_id,
            pipeline.phase,
            extra={"job_id": job_id, "phase": pipeline.phase},
        )
        _fail(job, error)


def _wait_for_slot(task, job: AnalysisJob) -> None:
    """Every sandbox slot is taken: the job waits, queued, for the next run to free one."""
    if slots.wait_for_slot(job.pk, task.request.id):
        logger.info(
            "Job %s waits for a sandbox slot (all %d taken)",
            job.pk,
            settings.MAX_CONCURRENT_SANDBOXES,
            extra={"job_id": str(job.pk)},
        )


def _transient(error: BaseException) -> bool:
    return isinstance(error, RETRIED_ERRORS) and not isinstance(error, SandboxDisabledError)


def _retry_later(task, job: AnalysisJob, error: BaseException) -> None:
    countdown = min(300, 30 * 2 ** (job.attempts - 1))
    logger.warning(
        "Job %s hit a transient failure (%s); retrying in %ss",
        job.pk,
        type(error).__name__,
        countdown,
        extra={"job_id": str(job.pk), "attempt": job.attempts},
    )
    try:
        jobs.requeue_for_retry(job, error, where={"celery_task_id": task.request.id})
    except InvalidJobStateError:
        return  # cancelled meanwhile
    try:
        raise task.retry(countdown=countdown, exc=error)
    except Retry:
        raise
    except Exception as publish_error:
        # The retry could not be published: hand the queued job to dispatch_pending_jobs.
        AnalysisJob.objects.filter(pk=job.pk).make_pending()
        logger.warning(
            "Could not schedule the retry of job %s; it waits for dispatch",
            job.pk,
            extra={"job_id": str(job.pk), "error_type": type(publish_error).__name__},
        )


def _fail(job: AnalysisJob, error: BaseException) -> None:
    try:
        # Only while the job still runs under this task: a superseded task records nothing.
        jobs.fail(job, error, where={"celery_task_id": job.celery_task_id})
    except InvalidJobStateError as conflict:
        # Cancelled (or taken over) meanwhile: that wins, nothing to record.
        logger.info(
            "Job %s left as %s",
            job.pk,
            conflict.details["current_state"],
            extra={"job_id": str(job.pk)},
        )


@shared_task(name="analysis.dispatch_pending_jobs")
def dispatch_pending_jobs_task() -> dict[str, int] | None:
    """Beat: publish queued jobs whose publish failed."""
    from analysis.dispatch import PUBLISHED, lost_publishes, pending_jobs, publish, release

    with cache_lock("dispatch_pending_jobs", settings.MAINTENANCE_INTERVAL_SECONDS) as held:
        if not held:
            logger.info("dispatch_pending_jobs already running elsewhere; skipped")
            return None
        for job_id, task_id in lost_publishes(settings.DISPATCH_LOST_AFTER_SECONDS):
            release(job_id, task_id)
        outcomes = [publish(job_id) for job_id in pending_jobs()]
        return {"pending": len(outcomes), "published": outcomes.count(PUBLISHED)}


@shared_task(name="analysis.recover_stale_jobs")
def recover_stale_jobs_task() -> dict | None:
    """Beat: requeue or fail jobs whose worker was lost."""
    from analysis.recovery import recover_stale_jobs

    with cache_lock("recover_stale_jobs", settings.STALE_JOB_SECONDS) as held:
        if not held:
            logger.info("recover_stale_jobs already running elsewhere; skipped")
            return None
        return recover_stale_jobs(settings.STALE_JOB_SECONDS)


@shared_task(name="analysis.reconcile_sandboxes")
def reconcile_sandboxes_task() -> dict | None:
    """Beat: delete sandbox objects nobody owns any more."""
    from analysis.sandbox.reconcile import reconcile_sandboxes

    if not settings.SANDBOX_ENABLED:
        return None
    with cache_lock("reconcile_sandboxes", 600) as held:
        if not held:
            logger.info("reconcile_sandboxes already running elsewhere; skipped")
            return None
        return reconcile_sandboxes()
