"""Turning Kubescape's evidence into a job's results: used by the sandbox and by imports."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.utils import timezone

from analysis import metrics
from analysis.image_reference import unique_digests
from analysis.kubescape.readers import Manifest, Sbom, read_kubescape_vex, read_manifest, read_sbom
from analysis.models import AnalysisJob, ReachabilityResult, VexDocument
from analysis.vex.builder import COMPLETE, VEX_STATUSES, BuildResult, DocumentInfo, build
from reliability.postgresql.inserts import create_large
from reliability.settings import reliability_settings

FULL, RELEVANT, KUBESCAPE_VEX, FILTERED_SBOM = (
    "full_manifest",
    "relevant_manifest",
    "kubescape_vex",
    "filtered_sbom",
)


@dataclass
class ParsedEvidence:
    """The evidence as read: the two manifests and, when there is one, the filtered SBOM."""

    full: Manifest
    relevant: Manifest
    sbom: Sbom | None = None

    @property
    def image_digests(self) -> tuple[str, ...]:
        return unique_digests(*self.full.image_digests, *self.relevant.image_digests)


@dataclass
class Evidence:
    """Kubescape's objects for one workload container, as read."""

    full: Any
    relevant: Any
    kubescape_vex: Any | None = None
    filtered_sbom: Any | None = None

    def parsed(self) -> ParsedEvidence:
        """Read everything; unreadable input raises ValidationError naming the field."""
        full, relevant = read_manifest(self.full, FULL), read_manifest(self.relevant, RELEVANT)
        if self.kubescape_vex is not None:
            read_kubescape_vex(self.kubescape_vex, KUBESCAPE_VEX)
        sbom = None
        if self.filtered_sbom is not None:
            sbom = read_sbom(self.filtered_sbom, FILTERED_SBOM)
        return ParsedEvidence(full, relevant, sbom)

    def items(self) -> list[tuple[str, Any]]:
        pairs = [
            (FULL, self.full),
            (RELEVANT, self.relevant),
            (KUBESCAPE_VEX, self.kubescape_vex),
            (FILTERED_SBOM, self.filtered_sbom),
        ]
        return [(kind, data) for kind, data in pairs if data is not None]


def build_for(
    job: AnalysisJob,
    parsed: ParsedEvidence,
    completeness: str,
    seen_digests: tuple[str | None, ...] = (),
) -> BuildResult:
    """``seen_digests``: digests of the image met while running it (the pod's ``imageID``)."""
    observed = job.config.get("analysis_duration") if job.origin == job.Origin.SANDBOX else None
    info = DocumentInfo(
        image_ref=job.image_ref,
        image_digest=job.image_digest,
        author=settings.VEX_AUTHOR,
        tooling=f"vexxy-premium/{reliability_settings.SERVICE_VERSION} with Kubescape "
        "runtime evidence",
        id_base=settings.VEX_DOCUMENT_ID_BASE,
        timestamp=timezone.now(),
        document_id=uuid.uuid4(),
        other_digests=unique_digests(*job.image_digests, *seen_digests, *parsed.image_digests),
        observed_seconds=observed,
    )
    loaded_files = parsed.sbom.files_by_package() if parsed.sbom else None
    started = time.perf_counter()
    result = build(
        parsed.full, parsed.relevant, info, completeness=completeness, loaded_files=loaded_files
    )
    metrics.vex_built(time.perf_counter() - started)
    return result


RESULT_BATCH = 1000
_RESULT_COLUMNS = ("job", "position", "cve_id", "package_name", "status", "severity", "data")


def store_results(job: AnalysisJob, results: list[dict[str, Any]]) -> None:
    """One row per result, in order: ``COPY`` on PostgreSQL, batches of ``INSERT`` elsewhere.

    Not ``bulk_create``: building a model instance per row and compiling its statement cost
    more than the rest of an import. On PostgreSQL, ``executemany`` of an ``INSERT`` still
    quoted every value into the SQL in Python (Django binds parameters client-side); ``COPY``
    streams the rows in the driver's C code, 100,000 of them in a few seconds.
    """
    connection = connections[router.db_for_write(ReachabilityResult)]
    table, columns, job_field, encoder = _result_table(connection)
    rows = _result_rows(job_field.get_db_prep_save(job.pk, connection), results, encoder)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            copy_from = f"COPY {table} ({columns}) FROM STDIN"  # the model's names
            with connection.wrap_database_errors, cursor.copy(copy_from) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            values = ", ".join(["%s"] * len(_RESULT_COLUMNS))
            sql = f"INSERT INTO {table} ({columns}) VALUES ({values})"  # noqa: S608 - as above
            while batch := list(islice(rows, RESULT_BATCH)):
                cursor.executemany(sql, batch)


def _result_rows(
    job_id: Any, results: list[dict[str, Any]], encoder: type[json.JSONEncoder] | None
) -> Iterator[tuple[Any, ...]]:
    for position, result in enumerate(results):
        yield (
            job_id,
            position,
            result["cve_id"],
            result["package_name"],
            result["status"],
            result["severity"],
            json.dumps(result, cls=encoder),
        )


def _result_table(connection: BaseDatabaseWrapper) -> tuple[str, str, Field, Any]:
    """The result table's quoted name and columns, its ``job`` field, its ``data`` encoder."""
    meta = ReachabilityResult._meta
    quote = connection.ops.quote_name
    fields = [meta.get_field(name) for name in _RESULT_COLUMNS]
    columns = ", ".join(quote(field.column) for field in fields)
    return quote(meta.db_table), columns, fields[0], fields[-1].encoder


def record(job: AnalysisJob, result: BuildResult, completeness: str = COMPLETE) -> dict[str, Any]:
    """The job fields that the result sets; creates the VEX document when there is one."""
    fields: dict[str, Any] = {
        "image_digests": list(result.image_digests),
        "summary": result.summary,
        "execution_profile": {"evidence_completeness": completeness},
        "progress_percent": 100,
        "current_phase": "complete",
        "completed_at": timezone.now(),
    }
    store_results(job, result.results)
    if result.document is not None:
        vex = create_large(
            VexDocument,
            id=result.document_id,
            job=job,
            document=result.document,
            statement_counts=result.statement_counts,
        )
        fields["generated_vex_id"] = vex.pk
        metrics.vex_recorded(result.statement_counts, VEX_STATUSES)
    return fields
