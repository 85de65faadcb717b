"""The analysis app's errors under the retry policy: retried by their status, like any other."""

from __future__ import annotations

import pytest

from analysis.exceptions import InvalidJobStateError, KubernetesError
from tests.reliability.test_retry import run


@pytest.mark.parametrize(
    ("failure", "calls"),
    [
        (InvalidJobStateError("j", "running", "complete"), 1),
        (KubernetesError("read_pod", status_code=403), 1),
        (KubernetesError("read_pod", status_code=503), 2),
        (KubernetesError("read_pod"), 2),
    ],
    ids=["invalid-state", "kubernetes-403", "kubernetes-503", "kubernetes-unreachable"],
)
def test_domain_errors_are_retried_by_their_status(failure, calls):
    outcome = run([failure], max_attempts=5)
    assert outcome.calls == calls
    assert (outcome.error, outcome.result) == ((failure, None) if calls == 1 else (None, "ok"))
