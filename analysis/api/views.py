"""The analysis API. Every lookup is scoped to the caller's organization."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import StaticHTMLRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis import jobs
from analysis.api.filters import JobListFilters, ResultFilters, VexOptions
from analysis.api.lookups import PreparedLookup
from analysis.api.openapi import errors, pagination_parameters
from analysis.api.renderers import (
    CYCLONEDX_MEDIA_TYPE,
    VEX_FORMATS,
    VEX_RENDERERS,
    CycloneDxRenderer,
    unknown_format,
)
from analysis.api.serializers import (
    EvidenceSerializer,
    ImportResponseSerializer,
    ImportSerializer,
    JobResultsSerializer,
    JobSerializer,
    JobStatusSerializer,
    SubmitResponseSerializer,
    SubmitSerializer,
)
from analysis.api.streaming import column_text, streamed_json
from analysis.exceptions import InvalidJobStateError, JobNotFoundError
from analysis.imports import document_bounds, import_results
from analysis.models import AnalysisJob, Organization, VexDocument
from analysis.report.pages import report_response
from analysis.report.table import Filters
from analysis.results import Evidence
from analysis.status import JobStatus
from analysis.uuids import parse_uuid
from reliability.documents import Bounds
from reliability.exceptions import ResourceNotFoundError
from reliability.negotiation import unknown_format_error
from reliability.pagination import KeysetCursorPagination
from reliability.parsers import BoundedJSONParser


class OrganizationScoped:
    request: Request

    @property
    def organization(self) -> Organization:
        return self.request.user.organization

    @property
    def actor(self) -> str:
        return str(self.request.user)

    def get_job(
        self, job_id: str, *, with_outcome: bool = False, lookup: PreparedLookup | None = None
    ) -> AnalysisJob:
        """The caller's job; through ``lookup`` when given (its columns loaded, others deferred)."""
        if lookup is not None:
            job = lookup.first(organization_id=self.organization.pk, pk=parse_uuid(job_id))
        else:
            jobs = AnalysisJob.objects.for_organization(self.organization)
            if not with_outcome:
                jobs = jobs.without_outcome()
            job = jobs.filter(pk=parse_uuid(job_id)).order_by().first()
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def get_complete_job(self, job_id: str) -> AnalysisJob:
        """The caller's job with its outcome; 409 unless it is complete."""
        job = self.get_job(job_id, with_outcome=True)
        if job.status != JobStatus.COMPLETE:
            raise InvalidJobStateError(job.pk, job.status, JobStatus.COMPLETE.value)
        return job


# The two reads every client polls: their SQL is compiled once per connection.
JOB_LOOKUP = PreparedLookup(AnalysisJob, JobSerializer.columns(), ("organization_id", "pk"))
STATUS_LOOKUP = PreparedLookup(
    AnalysisJob, JobStatusSerializer.columns(), ("organization_id", "pk")
)


class SubmitView(OrganizationScoped, APIView):
    @extend_schema(
        operation_id="analysis_submit",
        request=SubmitSerializer,
        responses={201: SubmitResponseSerializer, **errors(400, 413, 415)},
        summary="Submit an image for runtime reachability analysis",
        description="Refused with 503 SERVICE_UNAVAILABLE while there is no sandbox to run it "
        "(no cluster configured, Kubernetes or Kubescape unhealthy): never accepted and lost.",
    )
    def post(self, request: Request) -> Response:
        serializer = SubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = jobs.submit(self.organization, serializer.validated_data, self.actor)
        return Response(SubmitResponseSerializer(job).data, status=status.HTTP_201_CREATED)


class ImportView(OrganizationScoped, APIView):
    parser_classes = [BoundedJSONParser, MultiPartParser]

    @property
    def json_bounds(self) -> Bounds:
        return document_bounds()

    @extend_schema(
        operation_id="analysis_import",
        request={"application/json": ImportSerializer, "multipart/form-data": ImportSerializer},
        responses={201: ImportResponseSerializer, **errors(400, 413, 415)},
        summary="Build results and VEX from Kubescape objects you already have (no cluster)",
    )
    def post(self, request: Request) -> Response:
        serializer = ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = import_results(
            self.organization,
            data["image_ref"],
            data["image_digest"],
            Evidence(
                data["full_manifest"],
                data["relevant_manifest"],
                data.get("kubescape_vex"),
                data.get("filtered_sbom"),
            ),
            completion=data["completion"],
            submitted_by=self.actor,
        )
        return Response(ImportResponseSerializer(job).data, status=status.HTTP_201_CREATED)


class JobCursorPagination(KeysetCursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 20
    max_page_size = 100


class ResultCursorPagination(KeysetCursorPagination):
    ordering = ("position",)  # unique within a job
    page_size = 100
    max_page_size = 1000


class JobListView(OrganizationScoped, generics.ListAPIView):
    serializer_class = JobSerializer
    pagination_class = JobCursorPagination

    def get_queryset(self):
        jobs = AnalysisJob.objects.for_organization(self.organization)
        jobs = JobListFilters.filter(jobs, self.request.query_params)
        # Rows as dicts: building a model instance per job cost a quarter of a page.
        return jobs.values(*JobSerializer.columns())

    @extend_schema(
        operation_id="analysis_list",
        parameters=[JobListFilters],
        responses={200: JobSerializer(many=True), **errors(400)},
        summary="List the organization's jobs, newest first (cursor-paginated)",
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(JobSerializer.represent_rows(page))


class JobDetailView(OrganizationScoped, APIView):
    @extend_schema(
        operation_id="analysis_retrieve",
        responses={200: JobSerializer, **errors(404)},
        summary="One job",
    )
    def get(self, request: Request, job_id: str) -> Response:
        return Response(JobSerializer.represent(self.get_job(job_id, lookup=JOB_LOOKUP)))

    @extend_schema(
        operation_id="analysis_cancel",
        responses={200: JobStatusSerializer, **errors(404, 409)},
        summary="Cancel a queued or running job",
    )
    def delete(self, request: Request, job_id: str) -> Response:
        job = jobs.cancel(self.get_job(job_id), self.actor)
        return Response(JobStatusSerializer(job).data)


class JobStatusView(OrganizationScoped, APIView):
    @extend_schema(
        operation_id="analysis_status",
        responses={200: JobStatusSerializer, **errors(404)},
        summary="Progress of a job",
    )
    def get(self, request: Request, job_id: str) -> Response:
        job = self.get_job(job_id, lookup=STATUS_LOOKUP)
        return Response(JobStatusSerializer.represent(job))


class JobResultsView(OrganizationScoped, APIView):
    @extend_schema(
        operation_id="analysis_results",
        parameters=[ResultFilters, *pagination_parameters(ResultCursorPagination)],
        responses={200: JobResultsSerializer, **errors(400, 404, 409)},
        summary="Reachability results of a complete job, a page at a time, with its summary",
    )
    def get(self, request: Request, job_id: str) -> Response:
        job = self.get_complete_job(job_id)
        results = ResultFilters.filter(job.results.all(), request.query_params)
        paginator = ResultCursorPagination()
        page = paginator.paginate_queryset(results, request, self)
        body = JobResultsSerializer(job).data
        body.update(
            next=paginator.get_next_link(),
            previous=paginator.get_previous_link(),
            reachability_results=[result.data for result in page or ()],
        )
        return Response(body)


class ReportOptions(ResultFilters):
    download = serializers.BooleanField(
        required=False, help_text="Send as an attachment, report-<id>.html."
    )


class JobReportView(OrganizationScoped, APIView):
    # Errors are still the JSON envelope (the exception handler answers them, not a renderer).
    renderer_classes = [StaticHTMLRenderer]

    @extend_schema(
        operation_id="analysis_report",
        parameters=[ReportOptions],
        responses={
            (200, "text/html"): OpenApiResponse(
                OpenApiTypes.STR,
                description="One self-contained HTML page (inline CSS and SVG, no script): the "
                "summary, a severity-by-status chart and every result the filters keep, most "
                "severe first.",
            ),
            **errors(400, 404, 409),
        },
        summary="A readable report of a complete job's results, as one HTML file",
    )
    def get(self, request: Request, job_id: str) -> StreamingHttpResponse:
        job = self.get_complete_job(job_id)
        options = ReportOptions(data=request.query_params.dict())
        options.is_valid(raise_exception=True)
        data = options.validated_data
        filters = Filters(status=data.get("status"), severity=data.get("severity"))
        return report_response(job, filters, download=data.get("download", False))


class JobRetryView(OrganizationScoped, APIView):
    @extend_schema(
        operation_id="analysis_retry",
        request=None,
        responses={202: JobStatusSerializer, **errors(404, 409)},
        summary="Requeue a failed or cancelled job",
        description="Like a submission, refused with 503 SERVICE_UNAVAILABLE while there is no "
        "sandbox to run it (no cluster configured, Kubernetes or Kubescape unhealthy).",
    )
    def post(self, request: Request, job_id: str) -> Response:
        job = jobs.retry(self.get_job(job_id), self.actor)
        return Response(JobStatusSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobEvidenceView(OrganizationScoped, APIView):
    @extend_schema(
        operation_id="analysis_evidence",
        responses={200: EvidenceSerializer(many=True), **errors(404)},
        summary="Evidence collected for a job (metadata; the data is in the admin)",
    )
    def get(self, request: Request, job_id: str) -> Response:
        job = self.get_job(job_id)
        return Response(EvidenceSerializer(job.evidence.defer("data"), many=True).data)


VEX_200 = (
    "OpenVEX v0.2.0 as `application/json` (for Trivy, Grype, vexctl), or a CycloneDX 1.6 "
    f"BOM with embedded VEX as `{CYCLONEDX_MEDIA_TYPE}` (for Dependency-Track)"
)


class VexDocumentView(OrganizationScoped, APIView):
    renderer_classes = VEX_RENDERERS

    def perform_content_negotiation(self, request: Request, force: bool = False):
        # The negotiation refuses an unknown ?format= before authentication; negotiate as if it
        # were absent, and let the view refuse it (an empty one too) once the caller is known.
        if unknown_format(request):
            return super().perform_content_negotiation(request, force=True)
        return super().perform_content_negotiation(request, force)

    @extend_schema(
        operation_id="vex_retrieve",
        parameters=[
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=list(VEX_FORMATS),
                description="`openvex` (default; `json` is the same) or `cyclonedx`; `Accept: "
                f"{CYCLONEDX_MEDIA_TYPE}` also selects CycloneDX.",
            ),
            OpenApiParameter(
                "download",
                OpenApiTypes.BOOL,
                description="Send as an attachment: vex-<id>.json, or vex-<id>.cdx.json.",
            ),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description=VEX_200),
            (200, CYCLONEDX_MEDIA_TYPE): OpenApiResponse(OpenApiTypes.OBJECT, description=VEX_200),
            **errors(400, 404),
        },
        summary="The VEX document generated by a job, as OpenVEX or CycloneDX",
    )
    def get(self, request: Request, vex_id: str) -> StreamingHttpResponse:
        requested = unknown_format(request)
        if requested is not None:
            raise unknown_format_error(requested, VEX_FORMATS)
        options = VexOptions(data=request.query_params.dict())
        options.is_valid(raise_exception=True)
        download = options.validated_data.get("download", False)
        cyclonedx = isinstance(request.accepted_renderer, CycloneDxRenderer)
        documents = VexDocument.objects.filter(
            pk=parse_uuid(vex_id), job__organization=self.organization
        )
        if cyclonedx:
            unbuilt = documents.filter(cyclonedx__isnull=True).defer("cyclonedx").first()
            if unbuilt is not None:
                unbuilt.as_cyclonedx()
        text = column_text(documents, "cyclonedx" if cyclonedx else "document")
        if text is None:
            raise ResourceNotFoundError("VEX document", vex_id)
        filename = f"vex-{parse_uuid(vex_id)}.{'cdx.json' if cyclonedx else 'json'}"
        return streamed_json(
            text, request.accepted_renderer.media_type, filename if download else None
        )
