"""``anomaly-fast stream``: see :mod:`anomaly_fast.pipeline_cli`."""

from .pipeline_cli import stream_main as main

__all__ = ["main"]
