"""The service's settings, unchanged, with ``bench/floor.py`` as the URLconf."""

from vexxy.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floor"
