"""The compiled job representations equal what their DRF serializers produce."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from analysis.api.serializers import (
    ImportResponseSerializer,
    JobSerializer,
    JobStatusSerializer,
    SubmitResponseSerializer,
)
from analysis.models import AnalysisJob
from analysis.profiles import REDACTED, normalize_config
from tests.conftest import make_job

SERIALIZERS = [
    JobSerializer,
    JobStatusSerializer,
    ImportResponseSerializer,
    SubmitResponseSerializer,
]


@pytest.fixture
def jobs(organization) -> list[AnalysisJob]:
    config = normalize_config("standard", {"ports": [8080], "environment": {"TOKEN": "s3cret"}})
    now = timezone.now()
    return [
        make_job(organization, config=config),
        make_job(
            organization,
            config=config,
            status="complete",
            started_at=now - timedelta(minutes=7),
            completed_at=now.astimezone(ZoneInfo("Europe/Sofia")),
            summary={"total": 3},
            generated_vex_id="11111111-2222-4333-8444-555555555555",
            image_digests=["sha256:" + "a" * 64],
        ),
        make_job(
            organization,
            config=config,
            status="failed",
            error_code="SANDBOX_FAILED",
            error_message="Pod failed: ImagePullBackOff",
            error_details={"phase": "deploying"},
            cancelled_at=datetime(2026, 11, 1, 12, 30, 0, 123456, tzinfo=ZoneInfo("UTC")),
        ),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("serializer", SERIALIZERS, ids=lambda s: s.__name__)
def test_the_representation_is_the_serializers(serializer, jobs):
    for job in jobs:
        fresh = AnalysisJob.objects.get(pk=job.pk)
        represented = serializer.represent(fresh)
        assert represented == serializer(fresh).data
        assert list(represented) == list(serializer(fresh).data)


@pytest.mark.django_db
def test_the_representation_needs_only_the_serializers_columns(jobs, django_assert_num_queries):
    loaded = list(AnalysisJob.objects.only(*JobSerializer.columns()).order_by("created_at"))
    with django_assert_num_queries(0):
        represented = [JobSerializer.represent(job) for job in loaded]
    # environment values are write-only: the representation redacts them like the serializer
    assert represented[0]["config"]["environment"] == {"TOKEN": REDACTED}


@pytest.mark.django_db
def test_a_row_of_values_is_represented_like_its_instance(jobs):
    rows = AnalysisJob.objects.order_by("created_at").values(*JobSerializer.columns())
    for row, job in zip(rows, sorted(jobs, key=lambda job: job.created_at), strict=True):
        assert JobSerializer.represent_row(row) == JobSerializer(job).data


def test_rows_cannot_stand_for_fields_that_are_not_columns():
    from analysis.api.representation import compile_representation

    with pytest.raises(TypeError, match="estimated_duration_minutes is not a column"):
        compile_representation(SubmitResponseSerializer(), rows=True)


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["UTC", "Europe/Sofia"])
def test_a_page_of_rows_is_represented_like_its_instances_in_the_current_zone(jobs, zone):
    rows = AnalysisJob.objects.order_by("created_at").values(*JobSerializer.columns())
    ordered = sorted(jobs, key=lambda job: job.created_at)
    with timezone.override(ZoneInfo(zone)):
        page = JobSerializer.represent_rows(rows)
        assert page == [JobSerializer(job).data for job in ordered]
    assert page[1]["completed_at"].endswith("Z") == (zone == "UTC")
