"""``python -m anomaly_fast``: the ``anomaly-fast`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
