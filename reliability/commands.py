"""Base class for the service's management commands."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from .correlation import correlation_scope


class CorrelatedCommand(BaseCommand):
    """A command whose run has a correlation ID of its own, like a request.

    Every log record of the run carries it, so an operator can find one run's
    lines. ``--json`` asks for one JSON object on stdout instead of prose.
    """

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def execute(self, *args: Any, **options: Any) -> str | None:
        with correlation_scope() as request_id:
            self.request_id = request_id
            return super().execute(*args, **options)

    def emit(self, options: dict[str, Any], summary: dict[str, Any], text: str) -> None:
        """Print ``summary`` as JSON with ``--json``, otherwise ``text``."""
        if options.get("json"):
            self.stdout.write(json.dumps({**summary, "request_id": self.request_id}, default=str))
        else:
            self.stdout.write(text)
