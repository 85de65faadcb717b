"""Migration 0008 keeps stored evidence readable as the text its hash was computed from.

On PostgreSQL the column was jsonb, whose cast to text spells a document its own way; the
migration rewrites it in the canonical spelling (sorted keys, no whitespace).
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from analysis.evidence import canonical_text
from analysis.models import AnalysisJob

BEFORE, AFTER = ("analysis", "0007_sandbox_slots"), ("analysis", "0008_evidence_as_text")
INSERT = (
    "INSERT INTO analysis_analysisevidence (id, job_id, evidence_type, data, size_bytes, sha256,"
    " description, created_at) VALUES (%s, %s, 'full_manifest', {}, %s, %s, '', CURRENT_TIMESTAMP)"
)
INSERT_JSONB, INSERT_TEXT = INSERT.format("%s::jsonb"), INSERT.format("%s")
DOCUMENT = {"zeta": 1, "a": {"bb": [1, 2, "é"], "c": None}, "long_key_name": "v"}


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


@pytest.mark.django_db(transaction=True)
def test_evidence_stored_as_json_reads_back_as_its_canonical_text(organization):
    job_id = AnalysisJob.objects.create(
        organization=organization, image_ref="a", image_digest="sha256:" + "a" * 64
    ).pk
    text = canonical_text(DOCUMENT)
    migrate(BEFORE)
    try:
        uuid_value = AnalysisJob._meta.pk.get_db_prep_value
        with connection.cursor() as cursor:
            cursor.execute(
                INSERT_JSONB if connection.vendor == "postgresql" else INSERT_TEXT,
                [
                    uuid_value(uuid.uuid4(), connection),
                    uuid_value(job_id, connection),
                    text,
                    len(text.encode()),
                    sha256(text),
                ],
            )
    finally:
        migrate(AFTER)

    with connection.cursor() as cursor:
        cursor.execute("SELECT data, sha256 FROM analysis_analysisevidence")
        stored, digest = cursor.fetchone()
    assert stored == text
    assert sha256(stored) == digest
    assert json.loads(stored) == DOCUMENT


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's column compression")
@pytest.mark.django_db
def test_evidence_is_compressed_with_lz4_on_postgresql():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attcompression FROM pg_attribute"
            " WHERE attrelid = 'analysis_analysisevidence'::regclass AND attname = 'data'"
        )
        assert cursor.fetchone()[0] == "l"  # lz4 (Debian's PostgreSQL 15 is built with it)
