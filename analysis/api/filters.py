"""Query-string filters of the job list and of a job's results.

Read from a plain dict of the query string (``QueryDict.dict()``): an empty
value is a value, refused like any other invalid one, as the schema says,
rather than DRF's form rule that makes it vanish.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import QueryDict
from rest_framework import serializers

from analysis.image_reference import SHA256_DIGEST_PATTERN
from analysis.kubescape.readers import SEVERITIES
from analysis.models import AnalysisJob, ReachabilityResult
from analysis.status import JobStatus
from analysis.vex.builder import VEX_STATUSES


class QueryFilters(serializers.Serializer):
    """Subclasses declare the fields and ``apply`` their validated data to a queryset."""

    @classmethod
    def filter(cls, queryset: QuerySet, query: QueryDict) -> QuerySet:
        """``queryset`` narrowed by the query string; 400 naming a bad value."""
        if not any(name in query for name in cls._declared_fields):
            return queryset  # building the serializer costs more than the page query
        filters = cls(data=query.dict())
        filters.is_valid(raise_exception=True)
        return filters.apply(queryset)

    def apply(self, queryset: QuerySet) -> QuerySet:
        raise NotImplementedError


class JobListFilters(QueryFilters):
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    # The replaced service called it status_filter; both are accepted.
    status_filter = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    profile = serializers.ChoiceField(choices=AnalysisJob.Profile.choices, required=False)
    image_digest = serializers.RegexField(SHA256_DIGEST_PATTERN, required=False, max_length=71)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        old = attrs.pop("status_filter", None)
        if old and attrs.get("status", old) != old:
            raise serializers.ValidationError(
                {
                    "status_filter": serializers.ErrorDetail(
                        "Conflicts with status; give one of them.", code="conflict"
                    )
                }
            )
        if old:
            attrs["status"] = old
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after and before and after > before:
            raise serializers.ValidationError(
                {
                    "created_before": serializers.ErrorDetail(
                        "Must not be earlier than created_after.", code="invalid_range"
                    )
                }
            )
        return attrs

    def apply(self, queryset: QuerySet[AnalysisJob]) -> QuerySet[AnalysisJob]:
        data = self.validated_data
        lookups = {
            "status": data.get("status"),
            "profile": data.get("profile"),
            "image_digest": data.get("image_digest"),
            "created_at__gte": data.get("created_after"),
            "created_at__lt": data.get("created_before"),
        }
        return queryset.filter(**{k: v for k, v in lookups.items() if v is not None})


class ResultFilters(QueryFilters):
    status = serializers.ChoiceField(choices=VEX_STATUSES, required=False)
    severity = serializers.ChoiceField(choices=SEVERITIES, required=False)

    def apply(self, queryset: QuerySet[ReachabilityResult]) -> QuerySet[ReachabilityResult]:
        return queryset.filter(**self.validated_data)


class VexOptions(serializers.Serializer):
    """``format`` is DRF's own (content negotiation); ``download`` is checked here."""

    download = serializers.BooleanField(required=False)
