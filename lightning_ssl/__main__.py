"""``python -m lightning_ssl``: the command line."""

import sys

from lightning_ssl.cli import main

sys.exit(main())
