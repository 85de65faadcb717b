from __future__ import annotations

from analysis import jobs
from analysis.management.commands.retry_job import JobActionCommand


class Command(JobActionCommand):
    help = "Cancel a queued or running job (as the API's cancel does); its task is revoked."
    action = staticmethod(jobs.cancel)
    done = "cancelled"
