#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vexxy.settings")
    import django
    from django.core.management import execute_from_command_line

    django.setup()
    from vexxy.storage import make_data_folders

    make_data_folders()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
