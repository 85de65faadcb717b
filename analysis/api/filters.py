"""Query-string filters of the job list."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers

from analysis.models import AnalysisJob
from analysis.status import JobStatus


class JobListFilters(serializers.Serializer):
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    # The replaced service called it status_filter; both are accepted.
    status_filter = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    profile = serializers.ChoiceField(choices=AnalysisJob.Profile.choices, required=False)
    image_digest = serializers.CharField(required=False, max_length=71)
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
