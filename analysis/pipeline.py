"""The sandbox pipeline that runs a claimed job.

Deploying the image, waiting for Kubescape's runtime evidence and building the
VEX document are not part of this release yet: a claimed job fails at once
with SERVICE_UNAVAILABLE naming the missing piece, so nobody waits on a job
that cannot finish. Submissions are refused up front whenever the sandbox is
not configured, so this is reached only with a cluster configured.
"""

from __future__ import annotations

from reliability.exceptions import ServiceUnavailableError

from .models import AnalysisJob


def run_pipeline(job: AnalysisJob) -> None:
    raise ServiceUnavailableError(
        "sandbox pipeline",
        "not available in this release",
        "The sandbox pipeline is not available in this release; import Kubescape results "
        "instead, or retry the job after upgrading.",
        retry_after=None,
    )
