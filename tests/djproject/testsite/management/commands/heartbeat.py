"""A long-running background program: says which release of the code it runs, every second."""

import os
import time

from django.core.management.base import BaseCommand

from testsite.release import RELEASE


class Command(BaseCommand):
    help = "Print the code's release and this process's pid every second, until stopped."

    def handle(self, *args, **options):
        while True:
            self.stdout.write(f"heartbeat release={RELEASE} pid={os.getpid()}")
            self.stdout.flush()
            time.sleep(1)
