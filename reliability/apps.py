from django.apps import AppConfig


class ReliabilityConfig(AppConfig):
    name = "reliability"
    verbose_name = "Reliability"

    def ready(self) -> None:
        # Connecting signal receivers; nothing here may touch the database or a cluster.
        from . import task_context  # noqa: F401
