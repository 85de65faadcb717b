"""Rows with a large value, inserted with server-side binding on PostgreSQL, read back intact."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from analysis.models import AnalysisEvidence, VexDocument
from analysis.status import JobStatus
from reliability.postgresql.inserts import create_large
from tests.conftest import make_job

pytestmark = pytest.mark.django_db

AWKWARD = "quote ' \" backslash \\ tab \t newline \n unicode é 🦀 percent %s %(x)s $1 "


def test_a_large_text_row_reads_back_as_created(organization):
    job = make_job(organization)
    text = AWKWARD * 50_000  # about 3.5 MB

    created = create_large(
        AnalysisEvidence,
        job=job,
        evidence_type="full_manifest",
        data=text,
        size_bytes=len(text),
        sha256="0" * 64,
    )

    assert not created._state.adding
    assert created._state.db == "default"
    stored = AnalysisEvidence.objects.get(pk=created.pk)
    assert stored.data == text
    assert (stored.job_id, stored.size_bytes, stored.created_at) == (
        job.pk,
        len(text),
        created.created_at,
    )


def test_a_json_row_reads_back_as_created(organization):
    job = make_job(organization, status=JobStatus.COMPLETE)
    document = {"statements": [{"note": AWKWARD, "n": n, "ok": n % 2 == 0} for n in range(500)]}

    created = create_large(
        VexDocument, job=job, document=document, statement_counts={"affected": 500}
    )

    stored = VexDocument.objects.get(pk=created.pk)
    assert (stored.document, stored.statement_counts, stored.cyclonedx) == (
        document,
        {"affected": 500},
        None,
    )


def test_a_refused_row_raises_djangos_error(organization):
    job = make_job(organization)
    first = create_large(
        AnalysisEvidence, job=job, evidence_type="x", data="", size_bytes=0, sha256=""
    )

    with pytest.raises(IntegrityError):
        create_large(
            AnalysisEvidence,
            id=first.pk,
            job=job,
            evidence_type="x",
            data="",
            size_bytes=0,
            sha256="",
        )


def test_save_signals_are_sent_as_create_sends_them(organization):
    from django.db.models.signals import post_save, pre_save

    job = make_job(organization)
    seen: list[tuple[str, bool | None, bool]] = []

    def pre(instance, **kwargs):
        seen.append(("pre", None, instance._state.adding))

    def post(instance, created, **kwargs):
        seen.append(("post", created, instance._state.adding))

    pre_save.connect(pre, sender=AnalysisEvidence, weak=False)
    post_save.connect(post, sender=AnalysisEvidence, weak=False)
    try:
        create_large(AnalysisEvidence, job=job, evidence_type="x", data="", size_bytes=0, sha256="")
    finally:
        pre_save.disconnect(pre, sender=AnalysisEvidence)
        post_save.disconnect(post, sender=AnalysisEvidence)

    assert seen == [("pre", None, True), ("post", True, False)]
