from django.apps import AppConfig


class AnalysisConfig(AppConfig):
    name = "analysis"
    verbose_name = "Analysis"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from analysis import (
            admin_login,  # noqa: F401 - logs admin lockouts
            api_keys,  # noqa: F401 - forgets cached keys when they or their organization change
            tasks,  # noqa: F401 - registers the tasks, which dispatch publishes by name
        )
        from analysis.api import openapi  # noqa: F401 - registers the API-key scheme with drf-spectacular
        from analysis.sandbox.checks import connect_worker_reports

        connect_worker_reports()
