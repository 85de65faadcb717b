"""Admin login throttling (django-axes): guessing stops after a few failures, and is logged."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def operator(settings) -> User:
    settings.AXES_FAILURE_LIMIT = 5
    return User.objects.create_superuser("operator", "op@example.com", "right-horse-battery")


def attempt(client, password: str, address: str = "203.0.113.7"):
    return client.post(LOGIN, {"username": "operator", "password": password}, REMOTE_ADDR=address)


def test_the_right_password_logs_in(client, operator):
    response = attempt(client, "right-horse-battery")
    assert (response.status_code, response["Location"]) == (302, "/admin/")


def test_guessing_locks_the_pair_out_and_says_so_in_the_log(client, operator, caplog):
    caplog.set_level(logging.WARNING, logger="analysis.admin_login")
    for _ in range(4):
        assert attempt(client, "wrong").status_code == 200  # the form again, with an error
    assert attempt(client, "wrong").status_code == 429

    locked = attempt(client, "right-horse-battery")

    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    lockouts = {
        (r.levelno, r.getMessage()) for r in caplog.records if r.name == "analysis.admin_login"
    }
    assert lockouts == {
        (
            logging.WARNING,
            "Admin login locked out for operator from 203.0.113.7 after repeated failures",
        )
    }
    assert "right-horse-battery" not in caplog.text
    assert "wrong" not in caplog.text


def test_a_lockout_is_per_address(client, operator):
    for _ in range(5):
        attempt(client, "wrong", address="203.0.113.7")
    response = attempt(client, "right-horse-battery", address="198.51.100.20")
    assert response.status_code == 302


def test_a_success_resets_the_count(client, operator):
    for _ in range(4):
        attempt(client, "wrong")
    assert attempt(client, "right-horse-battery").status_code == 302
    client.logout()
    for _ in range(4):
        assert attempt(client, "wrong").status_code == 200
    assert attempt(client, "right-horse-battery").status_code == 302
