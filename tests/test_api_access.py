"""Who may call the API, and how much: API keys, the monthly quota, throttling, availability."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from analysis.api_keys import hash_secret, issue_key, revoke_keys
from analysis.models import AnalysisJob, ApiKey, MonthlyUsage
from analysis.quota import seconds_until_next_month
from tests.conftest import api_client_for, assert_envelope

LIST = "/api/v1/analysis"
SUBMIT = "/api/v1/analysis/submit"
VALID = {"image_ref": "nginx:1.27", "image_digest": "sha256:" + "c" * 64}
CHALLENGE = 'Api-Key realm="vexxy"'


def unauthorized(response, message: str) -> None:
    body = assert_envelope(response, 401, "UNAUTHORIZED", {})
    assert body["message"] == message
    assert response["WWW-Authenticate"] == CHALLENGE


@pytest.mark.django_db
class TestApiKeys:
    def test_missing_key(self):
        unauthorized(APIClient().get(LIST), "Authentication credentials were not provided.")

    def test_wrong_secret(self, organization):
        key = issue_key(organization, "ci")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key.plaintext[:-4]}XXXX")
        unauthorized(client.get(LIST), "Invalid API key.")

    def test_malformed_key_and_scheme(self, organization):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Api-Key nonsense")
        unauthorized(client.get(LIST), "Malformed API key.")
        client.credentials(HTTP_AUTHORIZATION="Bearer abc")
        unauthorized(
            client.get(LIST), "Use 'Authorization: Api-Key <key>' or the X-API-Key header."
        )

    def test_revoked_and_expired(self, organization):
        revoked, expired = issue_key(organization, "old"), issue_key(organization, "late")
        ApiKey.objects.filter(pk=revoked.api_key.pk).update(revoked_at=timezone.now())
        ApiKey.objects.filter(pk=expired.api_key.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        for issued, message in (
            (revoked, "API key has been revoked."),
            (expired, "API key has expired."),
        ):
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {issued.plaintext}")
            unauthorized(client.get(LIST), message)

    def test_disabled_organization(self, organization, api):
        organization.is_active = False
        organization.save()
        unauthorized(api.get(LIST), "The organization of this API key is disabled.")

    def test_x_api_key_header_and_last_used(self, organization):
        issued = issue_key(organization, "header")
        response = APIClient().get(LIST, HTTP_X_API_KEY=issued.plaintext)
        assert response.status_code == 200
        issued.api_key.refresh_from_db()
        assert issued.api_key.last_used_at is not None

    def test_only_a_hash_is_stored(self, organization):
        issued = issue_key(organization, "hashed")
        secret = issued.plaintext.split("_", 2)[2]
        stored = ApiKey.objects.get(pk=issued.api_key.pk)
        assert stored.secret_hash == hash_secret(secret)
        assert secret not in json.dumps(list(ApiKey.objects.values()), default=str)


@pytest.mark.django_db
class TestRememberedKeys:
    """A verified key is remembered in the shared cache; every change to it is seen at once."""

    @pytest.fixture
    def remembered(self, organization, clean_cache):
        issued = issue_key(organization, "cached")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {issued.plaintext}")
        assert client.get(LIST).status_code == 200
        return issued.api_key, client

    def test_a_remembered_key_is_not_read_from_the_database(self, remembered):
        _, client = remembered
        with CaptureQueriesContext(connection) as queries:
            assert client.get(LIST).status_code == 200
        assert not [q for q in queries if "analysis_apikey" in q["sql"]]

    def test_revoking_forgets_it_at_once(self, remembered):
        api_key, client = remembered
        assert revoke_keys(ApiKey.objects.filter(pk=api_key.pk)) == 1
        unauthorized(client.get(LIST), "API key has been revoked.")

    def test_a_saved_change_of_the_key_is_seen_at_once(self, remembered):
        api_key, client = remembered
        api_key.expires_at = timezone.now() - timedelta(seconds=1)
        api_key.save()
        unauthorized(client.get(LIST), "API key has expired.")

    def test_deleting_the_key_forgets_it(self, remembered):
        api_key, client = remembered
        api_key.delete()
        unauthorized(client.get(LIST), "Invalid API key.")

    def test_disabling_the_organization_is_seen_at_once(self, remembered, organization):
        _, client = remembered
        organization.is_active = False
        organization.save()
        unauthorized(client.get(LIST), "The organization of this API key is disabled.")

    def test_without_the_cache_every_request_reads_the_key(self, remembered, settings):
        _, client = remembered
        settings.API_KEY_CACHE_SECONDS = 0
        with CaptureQueriesContext(connection) as queries:
            assert client.get(LIST).status_code == 200
        assert [q for q in queries if "analysis_apikey" in q["sql"]]


@pytest.mark.django_db
def test_create_api_key_prints_the_key_once(capsys, organization):
    call_command("create_api_key", "--organization", "acme", "--name", "ci", "--json")
    printed = json.loads(capsys.readouterr().out)
    assert printed["organization"] == "acme"
    response = APIClient().get(LIST, HTTP_AUTHORIZATION=f"Api-Key {printed['api_key']}")
    assert response.status_code == 200
    assert ApiKey.objects.get(prefix=printed["prefix"]).secret_hash != printed["api_key"]


@pytest.mark.django_db
def test_create_api_key_refuses_an_unknown_organization_unless_asked():
    with pytest.raises(CommandError, match="No organization 'newco'"):
        call_command("create_api_key", "--organization", "newco", "--name", "ci")
    call_command(
        "create_api_key",
        "--organization",
        "newco",
        "--name",
        "ci",
        "--create-organization",
        "--quota",
        "7",
    )
    assert ApiKey.objects.get(organization__slug="newco").organization.monthly_analysis_quota == 7


@pytest.mark.django_db
def test_requests_beyond_the_rate_limit_are_429(api, rate, clean_cache):
    rate("2/minute")
    assert [api.get(LIST).status_code for _ in range(2)] == [200, 200]
    response = api.get(LIST)
    body = assert_envelope(response, 429, "RATE_LIMITED")
    assert 1 <= body["details"]["wait_seconds"] <= 60
    assert response["Retry-After"] == str(body["details"]["wait_seconds"])


@pytest.mark.django_db
def test_submission_without_a_sandbox_is_refused_and_not_counted(
    api, organization, settings, log_records
):
    settings.SANDBOX_ENABLED = False
    response = api.post(SUBMIT, VALID, format="json")
    assert_envelope(
        response,
        503,
        "SERVICE_UNAVAILABLE",
        {
            "service": "sandbox",
            "reason": "no Kubernetes cluster is configured (SANDBOX_ENABLED is off)",
        },
    )
    assert response["Retry-After"] == "300"
    assert not AnalysisJob.objects.exists()
    assert not MonthlyUsage.objects.exists()
    # Expected on a setup without a cluster: a one-line warning, nothing for a human to chase.
    (logged,) = [r for r in log_records if r.levelno >= logging.WARNING]
    assert (logged.levelname, logged.error_code, logged.exc_info) == (
        "WARNING",
        "SERVICE_UNAVAILABLE",
        None,
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("sandbox_ready")
def test_over_quota_is_429_until_next_month(api, organization):
    organization.monthly_analysis_quota = 2
    organization.save()
    assert [api.post(SUBMIT, VALID, format="json").status_code for _ in range(2)] == [201, 201]
    response = api.post(SUBMIT, VALID, format="json")
    assert_envelope(
        response,
        429,
        "QUOTA_EXCEEDED",
        {"quota_type": "monthly_analyses", "limit": 2, "current": 2},
    )
    assert abs(int(response["Retry-After"]) - seconds_until_next_month(timezone.now())) <= 2
    assert AnalysisJob.objects.count() == 2


def test_seconds_until_next_month_crosses_the_year():
    moment = datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)
    assert seconds_until_next_month(moment) == 30
    assert seconds_until_next_month(datetime(2026, 2, 1, tzinfo=UTC)) == 28 * 86400


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sandbox_ready", "unconsumed_queue")
def test_concurrent_submissions_never_exceed_the_quota(organization):
    organization.monthly_analysis_quota = 3
    organization.save()
    clients = [api_client_for(organization) for _ in range(8)]
    start = threading.Barrier(len(clients))
    statuses: list[int] = []

    def submit(client: APIClient) -> None:
        try:
            start.wait()
            statuses.append(client.post(SUBMIT, VALID, format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] * 3 + [429] * 5
    assert AnalysisJob.objects.filter(organization=organization).count() == 3
    assert MonthlyUsage.objects.get(organization=organization).analyses == 3


@pytest.mark.django_db
def test_request_log_names_the_callers_organization(api, caplog):
    with caplog.at_level("INFO", "reliability.requests"):
        api.get(LIST)
    finished = [r for r in caplog.records if r.getMessage() == "request_finished"]
    assert [(r.organization, r.status, r.route) for r in finished] == [
        ("acme", 200, "api/v1/analysis")
    ]
