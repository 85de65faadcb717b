from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from analysis.api_keys import issue_key
from analysis.models import Organization
from reliability.commands import CorrelatedCommand


class Command(CorrelatedCommand):
    help = (
        "Create an API key for an organization and print it once; only its hash is stored. "
        "--create-organization creates the organization if it does not exist."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--organization", required=True, help="organization slug")
        parser.add_argument("--name", required=True, help="what the key is for, e.g. ci-main")
        parser.add_argument("--expires-in-days", type=int, help="default: never expires")
        parser.add_argument(
            "--create-organization",
            action="store_true",
            help="create the organization (name = slug) when missing",
        )
        parser.add_argument(
            "--quota", type=int, help="monthly analysis quota of a newly created organization"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["organization"]
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            if not options["create_organization"]:
                raise CommandError(
                    f"No organization {slug!r}; add --create-organization to create it."
                )
            extra = {"monthly_analysis_quota": options["quota"]} if options["quota"] else {}
            organization = Organization.objects.create(name=slug, slug=slug, **extra)
        days = options["expires_in_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
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
