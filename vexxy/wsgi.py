import os

from django.core.wsgi import get_wsgi_application

from vexxy.tracing import configure_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vexxy.settings")

# Before the handler loads the middleware: tracing adds its own first (when it is on).
configure_tracing("web")

application = get_wsgi_application()

from vexxy.storage import make_data_folders  # noqa: E402 - needs the settings loaded

make_data_folders()
