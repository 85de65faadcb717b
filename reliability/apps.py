from django.apps import AppConfig
from django.core import checks


class ReliabilityConfig(AppConfig):
    name = "reliability"
    verbose_name = "Reliability"

    def ready(self) -> None:
        # Connecting signal receivers; nothing here may touch the database or a cluster.
        from . import task_context  # noqa: F401
        from .heartbeats import connect_receivers

        connect_receivers()
        checks.register(check_settings)


def check_settings(**_: object) -> list[checks.CheckMessage]:
    """A misspelt RELIABILITY key stops ``manage.py check`` and every start, not one request."""
    from .settings import NAMESPACE, reliability_settings

    return [
        checks.Error(
            f"Unknown {NAMESPACE} setting {key!r}",
            id="reliability.E001",
            hint="reliability/settings.py lists every key and its default.",
        )
        for key in reliability_settings.unknown_keys()
    ]
