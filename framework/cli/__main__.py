"""``python -m framework.cli VERB ...``: what the nox sessions run."""

import sys

from framework import lifetime
from framework.cli import main

lifetime.install()  # stop cleanly on SIGTERM/SIGHUP, and when the parent (nox, a shell) is gone
sys.exit(main())
