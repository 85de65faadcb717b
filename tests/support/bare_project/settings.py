"""A Django project with nothing but the reliability app: no analysis, no RELIABILITY dict."""

from reliability.logs import build_logging_config

SECRET_KEY = "bare-project-test-only-0123456789abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = ["django.contrib.contenttypes", "rest_framework", "reliability"]
MIDDLEWARE = [
    "reliability.middleware.RequestContextMiddleware",
    "reliability.middleware.ErrorEnvelopeMiddleware",
]
ROOT_URLCONF = "tests.support.bare_project.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "reliability.handlers.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}
USE_TZ = True
LOGGING = build_logging_config(json_lines=True, level="INFO")
