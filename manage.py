#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")
    # Management commands log in as the owner (DATABASE_OWNER_URL); runserver, like the web, as the app role.
    if sys.argv[1:2] != ["runserver"]:
        os.environ.setdefault("DATABASE_LOGIN", "owner")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
