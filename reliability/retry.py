"""Retries with exponential backoff and full jitter.

A thin policy over tenacity: which failures are worth another attempt (not a
client's 4xx, not a validation error), how long to wait (full jitter, never
less than the server's ``Retry-After``), and what the log says (WARNING per
retry, ERROR when exhausted). The original exception is always re-raised.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import ValidationError as DRFValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception

from .exceptions import ValidationError
from .metrics.definitions import count_retry
from .settings import reliability_settings

logger = logging.getLogger("reliability.retry")

# Client errors that say "later", not "never".
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RetryConfig:
    """``max_attempts`` counts every call, the first one included."""

    max_attempts: int = field(default_factory=lambda: int(reliability_settings.DEFAULT_MAX_RETRIES))
    initial_delay: float = field(
        default_factory=lambda: float(reliability_settings.DEFAULT_INITIAL_DELAY)
    )
    max_delay: float = field(default_factory=lambda: float(reliability_settings.DEFAULT_MAX_DELAY))
    exponential_base: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("delays cannot be negative")

    def backoff_cap(self, attempt: int) -> float:
        """The longest wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_delay, self.initial_delay * self.exponential_base ** (attempt - 1))


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception stands for, from ours, kubernetes' or an HTTP client's."""
    for attribute in ("upstream_status", "status", "status_code"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait, if it did."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float):
        return float(value)
    headers = getattr(exc, "headers", None) or getattr(
        getattr(exc, "response", None), "headers", None
    )
    if not headers:
        return None
    raw = next((v for k, v in dict(headers).items() if k.lower() == "retry-after"), None)
    return parse_retry_after(raw)


def parse_retry_after(raw: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP date."""
    if raw is None:
        return None
    raw = str(raw).strip()
    if raw.isdigit():
        return float(raw)
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ValidationError | DRFValidationError | DjangoValidationError):
        return False
    status = status_of(exc)
    return not (
        status is not None and 400 <= status < 500 and status not in RETRYABLE_CLIENT_STATUSES
    )


class _Policy:
    """The tenacity arguments for one decorated function."""

    def __init__(
        self,
        name: str,
        exceptions: tuple[type[BaseException], ...],
        config: RetryConfig,
        rand: Callable[[], float],
    ) -> None:
        self.name, self.exceptions, self.config, self.rand = name, exceptions, config, rand
        self.gave_up = False

    def kwargs(self) -> dict[str, Any]:
        return {
            "retry": retry_if_exception(self._should_retry),
            "stop": self._stop,
            "wait": self._wait,
            "before_sleep": self._log_retry,
            "retry_error_callback": self._give_up,
        }

    def _should_retry(self, exc: BaseException) -> bool:
        return isinstance(exc, self.exceptions) and is_retryable(exc)

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.config.max_attempts:
            return True
        server_wait = retry_after_of(state.outcome.exception())
        return server_wait is not None and server_wait > self.config.max_delay

    def _wait(self, state: RetryCallState) -> float:
        cap = self.config.backoff_cap(state.attempt_number)
        delay = self.rand() * cap if self.config.jitter else cap
        server_wait = retry_after_of(state.outcome.exception())
        return max(delay, server_wait) if server_wait is not None else delay

    def _log_retry(self, state: RetryCallState) -> None:
        count_retry(self.name, "retried")
        exc = state.outcome.exception()
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "Retrying %s in %.2fs after attempt %d of %d failed: %s",
            self.name,
            delay,
            state.attempt_number,
            self.config.max_attempts,
            type(exc).__name__,
            extra={
                "function": self.name,
                "attempt": state.attempt_number,
                "max_attempts": self.config.max_attempts,
                "delay_seconds": round(delay, 3),
                "error_type": type(exc).__name__,
            },
        )

    def _give_up(self, state: RetryCallState) -> Any:
        self.gave_up = True
        exc = state.outcome.exception()
        logger.error(
            "Giving up on %s after %d attempt(s): %s",
            self.name,
            state.attempt_number,
            type(exc).__name__,
            extra={
                "function": self.name,
                "attempt": state.attempt_number,
                "max_attempts": self.config.max_attempts,
                "error_type": type(exc).__name__,
                "retry_after": retry_after_of(exc),
            },
        )
        return state.outcome.result()  # re-raises the original exception


def _attempts(retrying: Retrying) -> int:
    return int(retrying.statistics.get("attempt_number", 1))


def retry_with_backoff(
    exceptions: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    config: RetryConfig | None = None,
    *,
    sleep: Callable[[float], None] | None = None,
    rand: Callable[[], float] | None = None,
    operation: str | None = None,
) -> Callable[[F], F]:
    """Retry the decorated function on ``exceptions`` per ``config``.

    ``vexxy_retries_total{operation, outcome}`` counts, under ``operation``
    (default: the function's qualified name): ``retried`` per failed attempt another follows, then
    ``recovered`` when a later attempt succeeded or ``exhausted`` when it gave up.

    ``sleep`` and ``rand`` exist for tests and clocks of one's own.
    """
    caught = exceptions if isinstance(exceptions, tuple) else (exceptions,)

    def decorate(fn: F) -> F:
        name = operation or getattr(fn, "__qualname__", repr(fn))

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            policy = _Policy(name, caught, config or RetryConfig(), rand or random.random)
            retrying = Retrying(sleep=sleep or time.sleep, reraise=True, **policy.kwargs())
            try:
                result = retrying(fn, *args, **kwargs)
            except BaseException:
                # Stopped by the policy, or a failure not worth retrying after some that were.
                if policy.gave_up or _attempts(retrying) > 1:
                    count_retry(name, "exhausted")
                raise
            if _attempts(retrying) > 1:
                count_retry(name, "recovered")
            return result

        return wrapper  # type: ignore[return-value]

    return decorate
