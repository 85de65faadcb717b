"""gunicorn's settings for the web process (read from the working directory by default)."""

import os

workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = 60
