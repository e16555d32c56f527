"""Data in and results out for the benchmark commands: ADBench ``.npz``
files (never used by tests) and the ``results/`` folder.

``--data-dir`` may name the folder of ``.npz`` files or its parent holding
``adbench/``.
"""

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["RESULTS", "adbench_root", "adbench_file", "load_adbench_file", "write_json"]

RESULTS = "results"  # default folder of every results file and plot (ignored by git)


def adbench_root(data_dir):
    """The folder holding the ADBench ``.npz`` files; SystemExit with ``no
    such folder: ...`` when ``data_dir`` does not exist."""
    from ..cli import existing_folder

    root = Path(existing_folder(data_dir))
    return root / "adbench" if (root / "adbench").is_dir() else root


def adbench_file(data_dir, name):
    """The first ``.npz`` whose name contains ``name`` (``"cover"`` or
    ``"10_cover"``); SystemExit with a clear message when there is none."""
    root = adbench_root(data_dir)
    matches = sorted(root.glob(f"*{name}*.npz"))
    if not matches:
        raise SystemExit(f"no ADBench file matching {name!r} in {root}")
    return matches[0]


def load_adbench_file(path):
    """(X as C-contiguous float64, y as int 0/1) from one ADBench file."""
    with np.load(path) as npz:
        X = np.ascontiguousarray(npz["X"], dtype=np.float64)
        y = np.asarray(npz["y"]).astype(int).ravel()
    return X, y


def write_json(obj, path):
    """``obj`` as indented JSON at ``path``, creating its folder."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, default=str)
