"""Evidence: each Kubescape object a result was built from, kept with its hash and size."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from analysis.models import AnalysisEvidence, AnalysisJob


def canonical_bytes(data: Any) -> bytes:
    """The bytes the hash and size are of: sorted keys, no whitespace, UTF-8."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def store_evidence(
    job: AnalysisJob, evidence_type: str, data: Any, description: str = ""
) -> AnalysisEvidence:
    raw = canonical_bytes(data)
    return AnalysisEvidence.objects.create(
        job=job,
        evidence_type=evidence_type,
        data=data,
        size_bytes=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        description=description[:500],
    )
