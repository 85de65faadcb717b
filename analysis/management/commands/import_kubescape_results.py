from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from rest_framework.exceptions import APIException

from analysis.api.serializers import ImageSerializer, KubescapeDocumentField
from analysis.imports import import_results
from analysis.models import AnalysisJob, Organization
from analysis.results import Evidence, build_for
from reliability.commands import CorrelatedCommand
from reliability.documents import Bounds, collector_paused
from reliability.error_mapping import flatten_errors, to_vexxy_exception
from reliability.exceptions import ResourceNotFoundError, ValidationError

DOCUMENT_OPTIONS = ("full", "relevant", "vex", "sbom")
IMAGE_OPTIONS = {"image_ref": "--image", "image_digest": "--digest"}


def file_bounds(size: int) -> Bounds:
    """An operator's file may be larger than an upload, but never holds aliases or deep nesting."""
    return Bounds(max_depth=settings.MAX_IMPORT_DEPTH, max_values=size + 1, max_bytes=4 * size + 64)


class Command(CorrelatedCommand):
    help = (
        "Build reachability results and an OpenVEX document from Kubescape objects saved as "
        "JSON or YAML files (e.g. kubectl get vulnerabilitymanifest NAME -o yaml); no cluster "
        "needed. Creates a complete job, counted against the organization's quota."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--organization", required=True, help="organization slug")
        parser.add_argument("--image", required=True, help="image reference, e.g. nginx:1.27")
        parser.add_argument("--digest", required=True, help="sha256:<64 hex>")
        parser.add_argument(
            "--full", required=True, type=Path, help="the image's VulnerabilityManifest"
        )
        parser.add_argument(
            "--relevant",
            required=True,
            type=Path,
            help="the container's relevant (filtered) VulnerabilityManifest",
        )
        parser.add_argument("--vex", type=Path, help="Kubescape's VEX object (kept as evidence)")
        parser.add_argument("--sbom", type=Path, help="filtered SBOM (kept as evidence)")
        parser.add_argument(
            "--partial",
            action="store_true",
            help="the runtime profile was partial: lower confidence",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="read and build, print the summary, store nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["organization"]
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise ResourceNotFoundError("Organization", slug, f"No organization {slug!r}.")
        _check_image(options["image"], options["digest"])
        documents = {
            key: _load(f"--{key}", options[key]) if options[key] else None
            for key in DOCUMENT_OPTIONS
        }
        evidence = Evidence(
            documents["full"], documents["relevant"], documents["vex"], documents["sbom"]
        )
        completion = "partial" if options["partial"] else "complete"
        if options["dry_run"]:
            self._dry_run(options, evidence, completion)
            return
        job = import_results(
            organization,
            options["image"],
            options["digest"],
            evidence,
            completion=completion,
            submitted_by=f"command:{self.request_id}",
        )
        summary = job.summary
        self.emit(
            options,
            {"job_id": str(job.pk), "generated_vex_id": job.generated_vex_id, "summary": summary},
            f"Job {job.pk} complete: {summary['total_statements']} statement(s), "
            f"{summary['by_status']['affected']} affected, "
            f"{summary['by_status']['not_affected']} not affected"
            + (
                f"; VEX {job.generated_vex_id}"
                if job.generated_vex_id
                else "; no VEX document (no vulnerabilities matched)"
            ),
        )

    def _dry_run(self, options: dict[str, Any], evidence: Evidence, completion: str) -> None:
        unsaved = AnalysisJob(
            image_ref=options["image"],
            image_digest=options["digest"],
            origin=AnalysisJob.Origin.IMPORT,
        )
        with collector_paused():
            summary = build_for(unsaved, evidence.parsed(), completion).summary
        self.emit(
            options,
            {"job_id": None, "summary": summary, "dry_run": True},
            f"Would create a complete job: {summary['total_statements']} statement(s), "
            f"{summary['by_status']['affected']} affected (nothing stored)",
        )


def _check_image(image_ref: str, digest: str) -> None:
    image = ImageSerializer(data={"image_ref": image_ref, "image_digest": digest})
    if image.is_valid():
        return
    errors = [
        {**error, "field": IMAGE_OPTIONS.get(error["field"], error["field"])}
        for error in flatten_errors(image.errors)
    ]
    reasons = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
    raise ValidationError(f"Invalid image: {reasons}", errors=errors)


def _load(option: str, path: Path) -> dict[str, Any]:
    """The Kubescape object in the file ``option`` names; refused with the option and the path."""
    try:
        content = path.read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise _refused(option, f"Cannot read {path}", reason, "unreadable") from None
    try:
        return KubescapeDocumentField(bounds=file_bounds(len(content))).to_internal_value(content)
    except APIException as error:  # DRF's ValidationError, or our 400s for a refused document
        refused = to_vexxy_exception(error)
        first = (refused.details.get("errors") or [{}])[0]
        reason = first.get("message", refused.message)
        code = first.get("code", refused.error_code.lower())
        raise _refused(option, str(path), reason, code) from None


def _refused(option: str, subject: str, reason: str, code: str) -> ValidationError:
    return ValidationError(
        f"{subject}: {reason}", errors=[{"field": option, "code": code, "message": reason}]
    )
