"""Base class for the service's management commands: correlated and scriptable.

The contract every command keeps, for operators and scripts alike:

* stdout carries the result and nothing else: prose, or with ``--json`` exactly
  one JSON document. Log lines go to stderr (``reliability.logs``).
* A refusal is raised as a :class:`~reliability.exceptions.VexxyException`; with
  ``--json`` it prints the API's error envelope, less the timestamp:
  ``{"error": CODE, "message": ..., "details": {...} (if any), "request_id": ...}``.
  A run that did part of its work and failed at the rest prints its report with
  the same members added (:meth:`CorrelatedCommand.emit` with ``error``).
* Exit status: 0 done; 1 refused or failed (the document has ``error``); 2 the
  command line is wrong (argparse's own status; ``error`` is ``VALIDATION_ERROR``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from argparse import ArgumentTypeError
from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser

from .correlation import correlation_scope, new_request_id
from .error_mapping import to_vexxy_exception
from .exceptions import ValidationError, VexxyException

logger = logging.getLogger("reliability.commands")

FAILED, USAGE = 1, 2
JSON_FLAG = "--json"

Number = TypeVar("Number", int, float)


class UsageError(CommandError):
    """The command line is wrong: an unknown option, a missing or invalid value."""

    def __init__(self, message: str, parser: CommandParser) -> None:
        super().__init__(message, returncode=USAGE)
        self.explained = f"{parser.format_usage()}{parser.prog}: error: {message}"

    def as_vexxy(self) -> ValidationError:
        return ValidationError(str(self), errors=_usage_errors(str(self)))


_ARGUMENT = re.compile(r"argument (?P<field>\S+): (?P<message>.+)", re.DOTALL)
_REQUIRED = "the following arguments are required: "


def _usage_errors(message: str) -> list[dict[str, Any]]:
    """argparse's message as the API's ``{field, code, message}`` list, where it names options."""
    if match := _ARGUMENT.fullmatch(message):
        return [{"field": match["field"], "code": "invalid", "message": match["message"]}]
    if message.startswith(_REQUIRED):
        names = message.removeprefix(_REQUIRED).split(", ")
        return [{"field": name, "code": "required", "message": "Required."} for name in names]
    return []


def _raise_usage_error(parser: CommandParser, message: str) -> NoReturn:
    raise UsageError(message, parser)


def at_least(
    kind: Callable[[str], Number], minimum: Number, *, inclusive: bool = True
) -> Callable[[str], Number]:
    """An argparse ``type``: ``kind(text)``, refused below ``minimum`` (or at it)."""

    def parse(text: str) -> Number:
        value = kind(text)  # a ValueError is argparse's "invalid int value: 'x'"
        if value > minimum or (inclusive and value == minimum):
            return value
        bound = f"at least {minimum}" if inclusive else f"more than {minimum}"
        raise ArgumentTypeError(f"must be {bound}, not {text}")

    parse.__name__ = kind.__name__
    return parse


class CorrelatedCommand(BaseCommand):
    """A command whose run has a correlation ID of its own, like a request.

    Every log record of the run carries it, so an operator can find one run's
    lines; ``--json`` prints it as ``request_id``.
    """

    request_id: str
    _run_id: str | None = None  # chosen before parsing when run from the command line
    _printed = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            JSON_FLAG, action="store_true", help="print one JSON document, also on failure"
        )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Raised, never printed by argparse: run_from_argv reports it in the format asked for.
        parser.error = partial(_raise_usage_error, parser)  # type: ignore[method-assign]
        return parser

    def run_from_argv(self, argv: list[str]) -> None:
        self._run_id = new_request_id()
        try:
            super().run_from_argv(argv)
        except UsageError as error:
            self.stderr.write(error.explained)
            if JSON_FLAG in argv[2:]:  # the parse failed, so the flag is looked for as given
                self._print_json(_document({}, error.as_vexxy(), self._run_id))
            sys.exit(error.returncode)

    def execute(self, *args: Any, **options: Any) -> str | None:
        with correlation_scope(self._run_id) as request_id:
            self.request_id, self._printed = request_id, False
            try:
                return super().execute(*args, **options)
            except Exception as exc:
                raise self._refusal(exc, options) from exc

    def emit(
        self,
        options: dict[str, Any],
        summary: dict[str, Any],
        text: str,
        *,
        error: VexxyException | None = None,
    ) -> None:
        """Print ``summary`` as JSON with ``--json``, otherwise ``text``.

        With ``error`` the run did part of its work and failed at the rest: the
        document also carries the error's members, and the run exits 1.
        """
        if options.get("json"):
            self._print_json(_document(summary, error, self.request_id))
        else:
            self.stdout.write(text)
        if error is not None:
            raise error

    def _refusal(self, exc: Exception, options: dict[str, Any]) -> CommandError:
        """``exc`` as the CommandError Django reports on stderr; its envelope on stdout."""
        if isinstance(exc, CommandError):  # Django's own, e.g. a failed system check
            error, returncode = VexxyException(str(exc)), exc.returncode
        else:
            error, returncode = to_vexxy_exception(exc), FAILED
            if error is not exc:
                self._log_unexpected(exc, error)
        if options.get("json") and not self._printed:
            self._print_json(_document({}, error, self.request_id))
        return CommandError(f"{error.error_code}: {error.message}", returncode=returncode)

    def _log_unexpected(self, exc: Exception, error: VexxyException) -> None:
        """A bug gets its traceback; an outage (database down) one line."""
        command = type(self).__module__.rsplit(".", 1)[-1]
        if error.status_code == 503:
            logger.warning("%s failed: %s: %s", command, type(exc).__name__, exc)
        else:
            logger.error("%s failed", command, exc_info=exc)

    def _print_json(self, document: dict[str, Any]) -> None:
        if self._printed:
            raise RuntimeError("a command prints one JSON document per run")
        self._printed = True
        self.stdout.write(json.dumps(document, default=str))


def _document(
    summary: dict[str, Any], error: VexxyException | None, request_id: str | None
) -> dict[str, Any]:
    members: dict[str, Any] = {}
    if error is not None:
        members = {"error": error.error_code, "message": error.message}
        if error.details:
            members["details"] = error.details
    return {**summary, **members, "request_id": request_id}
