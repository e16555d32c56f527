"""Sphinx configuration of the anomaly_fast documentation.

Builds offline (no intersphinx, no remote images) with warnings as errors:
``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (``.ci/docs``).
The gallery (``examples/``) runs as part of the build, so a broken example
fails it.
"""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout (with its in-place build) comes first
os.environ.setdefault("PYTHONHASHSEED", "0")

import anomaly_fast  # noqa: E402

project = "anomaly_fast"
author = "the anomaly_fast developers"
copyright = "2026, the anomaly_fast developers"
release = anomaly_fast.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "**/*.ipynb",
    "**/*.py",
    "**/*.zip",
    "**/*.md5",
    "**/*.pickle",
    "sg_execution_times.rst",
]
templates_path = ["_templates"]

# -- API reference ------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False  # autosummary pages list the methods
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()  # style is enforced by review, not by the build

# -- Markdown (the benchmark pages live in benchmarks/*.md) -------------------
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # the benchmark pages jump from # to ###

# -- gallery ------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": False,  # report every broken example, then fail (-W)
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "show_memory": False,
    "reset_modules": ("matplotlib",),
    "within_subsection_order": "FileNameSortKey",
}

# -- HTML ---------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"anomaly_fast {release}"
html_static_path = []
html_theme_options = {
    "description": "Fast anomaly detection behind scikit-learn and river APIs",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_show_sourcelink = False
