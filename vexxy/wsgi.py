import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vexxy.settings")

application = get_wsgi_application()

from vexxy.storage import make_data_folders  # noqa: E402 - needs the settings loaded

make_data_folders()
