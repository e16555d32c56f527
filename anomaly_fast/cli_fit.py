"""``anomaly-fast fit``: see :mod:`anomaly_fast.pipeline_cli`."""

from .pipeline_cli import fit_main as main

__all__ = ["main"]
