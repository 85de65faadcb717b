"""PreparedLookup returns what the queryset it stands for returns, in one query."""

from __future__ import annotations

import uuid

import pytest

from analysis.api.lookups import PreparedLookup
from analysis.api.serializers import JobSerializer, JobStatusSerializer
from analysis.api.views import JOB_LOOKUP, STATUS_LOOKUP
from analysis.models import AnalysisJob, ApiKey
from tests.conftest import make_job

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("lookup", "serializer"),
    [(JOB_LOOKUP, JobSerializer), (STATUS_LOOKUP, JobStatusSerializer)],
    ids=["job", "status"],
)
def test_the_instance_is_the_querysets(lookup, serializer, organization, django_assert_num_queries):
    job = make_job(organization, status="failed", error_details={"phase": "deploying"})
    expected = AnalysisJob.objects.only(*lookup.columns).get(pk=job.pk)

    with django_assert_num_queries(1):
        found = lookup.first(organization_id=organization.pk, pk=job.pk)

    assert found.get_deferred_fields() == expected.get_deferred_fields()
    assert {c: getattr(found, c) for c in lookup.columns} == {
        c: getattr(expected, c) for c in lookup.columns
    }
    assert serializer.represent(found) == serializer(expected).data


def test_only_the_owners_job_is_found(organization, other_organization):
    job = make_job(organization)
    assert STATUS_LOOKUP.first(organization_id=other_organization.pk, pk=job.pk) is None
    assert STATUS_LOOKUP.first(organization_id=organization.pk, pk=uuid.uuid4()) is None
    assert STATUS_LOOKUP.first(organization_id=organization.pk, pk=None) is None


def test_a_lookup_by_other_field_types_is_refused():
    lookup = PreparedLookup(ApiKey, ["name"], ("prefix",))
    with pytest.raises(TypeError, match="cannot mark a CharField argument"):
        lookup.first(prefix="abc")
