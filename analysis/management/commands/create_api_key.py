from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from analysis.api_keys import issue_key
from analysis.models import Organization
from reliability.commands import CorrelatedCommand, at_least
from reliability.exceptions import ResourceNotFoundError


class Command(CorrelatedCommand):
    help = (
        "Create an API key for an organization and print it once; only its hash is stored. "
        "--create-organization creates the organization if it does not exist."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--organization", required=True, help="organization slug")
        parser.add_argument("--name", required=True, help="what the key is for, e.g. ci-main")
        parser.add_argument(
            "--expires-in-days", type=at_least(int, 1), help="default: never expires"
        )
        parser.add_argument(
            "--create-organization",
            action="store_true",
            help="create the organization (name = slug) when missing",
        )
        parser.add_argument(
            "--quota",
            type=at_least(int, 0),
            help="monthly analysis quota of a newly created organization",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        organization = self._organization(options)
        days = options["expires_in_days"]
        expires_at = timezone.now() + timedelta(days=days) if days else None
        issued = issue_key(organization, options["name"], expires_at)
        summary = {
            "organization": organization.slug,
            "name": issued.api_key.name,
            "prefix": issued.api_key.prefix,
            "expires_at": issued.api_key.expires_at,
            "api_key": issued.plaintext,
        }
        text = (
            f"API key {issued.api_key.name!r} for {organization.slug} "
            f"(prefix {issued.api_key.prefix}, "
            f"{'expires ' + expires_at.isoformat() if expires_at else 'no expiry'}):\n\n"
            f"    {issued.plaintext}\n\n"
            "Store it now: it cannot be shown again."
        )
        self.emit(options, summary, text)

    @staticmethod
    def _organization(options: dict[str, Any]) -> Organization:
        slug = options["organization"]
        organization = Organization.objects.filter(slug=slug).first()
        if organization is not None:
            return organization
        if not options["create_organization"]:
            raise ResourceNotFoundError(
                "Organization", slug, f"No organization {slug!r}; add --create-organization."
            )
        quota = options["quota"]
        extra = {"monthly_analysis_quota": quota} if quota is not None else {}
        return Organization.objects.create(name=slug, slug=slug, **extra)
