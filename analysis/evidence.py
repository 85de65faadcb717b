"""Evidence: each Kubescape object a result was built from, kept with its hash and size.

A document is encoded once (encoding a large one costs more than parsing it): its
canonical text is what the hash and size are of, and what the text column stores.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from analysis.models import AnalysisEvidence, AnalysisJob
from reliability.postgresql.inserts import create_large

HASH_CHUNK = 1 << 20  # characters of canonical text encoded at a time


def canonical_text(data: Any) -> str:
    """Sorted keys, no whitespace: the same JSON value, in one spelling."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_bytes(data: Any) -> bytes:
    """The bytes the hash and size are of: the canonical text in UTF-8."""
    return canonical_text(data).encode()


def size_and_sha256(text: str) -> tuple[int, str]:
    """Of ``text`` in UTF-8, encoded a piece at a time rather than copied whole."""
    digest, size = hashlib.sha256(), 0
    for start in range(0, len(text), HASH_CHUNK):
        piece = text[start : start + HASH_CHUNK].encode()
        digest.update(piece)
        size += len(piece)
    return size, digest.hexdigest()


def store_evidence(
    job: AnalysisJob, evidence_type: str, data: Any, description: str = ""
) -> AnalysisEvidence:
    text = canonical_text(data)
    size, sha256 = size_and_sha256(text)
    return create_large(
        AnalysisEvidence,
        job=job,
        evidence_type=evidence_type,
        data=text,
        size_bytes=size,
        sha256=sha256,
        description=description[:500],
    )
