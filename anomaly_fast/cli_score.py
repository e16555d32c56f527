"""``anomaly-fast score``: see :mod:`anomaly_fast.pipeline_cli`."""

from .pipeline_cli import score_main as main

__all__ = ["main"]
