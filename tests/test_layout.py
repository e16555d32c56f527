"""The codebase's layout rules, checked on the source."""

import ast
import pathlib

import anomaly_fast

PACKAGE = pathlib.Path(anomaly_fast.__file__).parent


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _private_sklearn_imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sklearn":
            parts = node.module.split(".")
            if any(part.startswith("_") for part in parts):
                found.append(node.module)
            found.extend(f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_"))
        elif isinstance(node, ast.Import):
            found.extend(
                a.name
                for a in node.names
                if a.name.startswith("sklearn") and any(p.startswith("_") for p in a.name.split("."))
            )
    return found


def test_only_the_compat_module_imports_scikit_learn_private_names():
    offenders = {
        str(p.relative_to(PACKAGE)): names
        for p in _modules()
        if p.name != "_sklearn_compat.py" and (names := _private_sklearn_imports(p))
    }
    assert offenders == {}


def test_the_compat_module_does_import_private_names():
    # the check above would pass vacuously if the scanner found nothing anywhere
    assert _private_sklearn_imports(PACKAGE / "_sklearn_compat.py")


# -- import direction (ARCHITECTURE.md) --------------------------------------------
# Every module of the package and its layer; a module imports only modules of
# its own layer or below.  A module missing here fails the test: place it.
FOUNDATION, ESTIMATORS, COMPOSITION, PRODUCTION, INTERFACES, FACADE = range(6)
KERNELS = ("_adwin", "_alarms", "_checks", "_hst", "_isolation", "_lof", "_top_k")  # compiled from native/*.pyx
LAYERS = {
    **dict.fromkeys(KERNELS, FOUNDATION),
    "_sklearn_compat": FOUNDATION,
    "_validation": FOUNDATION,
    "_moved": FOUNDATION,
    **dict.fromkeys(
        [
            "forest",
            "forest.base",
            "forest.explain",
            "forest.format",
            "forest.isolation_forest",
            "forest.extended_isolation_forest",
            "local_outlier_factor",
            "adwin",
            "half_space_trees",
            "feature_monitor",
            "streaming",
            "streaming.adwin",
            "streaming.half_space_trees",
            "streaming.feature_monitor",
            "timeseries",
            "timeseries._alarm_runs",
            "timeseries._series",
            "timeseries._stream",
            "timeseries.lstm_detector",
            "timeseries.stl_detector",
            "timeseries.stl_recipe",
            "timeseries.window_detector",
        ],
        ESTIMATORS,
    ),
    **dict.fromkeys(["_scores", "ensemble", "evaluation"], COMPOSITION),
    **dict.fromkeys(
        [
            "pipeline",
            "pipeline.orchestration",
            "pipeline.events",
            "pipeline.suppression",
            "pipeline.threshold",
            "pipeline.alert_store",
            "pipeline.alert_store_postgres",
            "pipeline.registry",
            "pipeline.adaptation",
            "scale_out",
        ],
        PRODUCTION,
    ),
    **dict.fromkeys(
        [
            "cli",
            "__main__",
            "pipeline.cli",
            "pipeline.stream_workers",
            "_fuzz",
            "_fuzz_forest",
            "_fuzz_streaming",
            "bench",
            "bench._data",
            "bench._timing",
            "bench.ensemble_latency",
            "bench.evaluate",
            "bench.forest",
            "bench.nab",
            "bench.adaptation",
            "bench.stores",
            "bench.pipeline",
            "bench.scale_out",
            "bench.streaming",
            "bench.timeseries",
        ],
        INTERFACES,
    ),
    # the package (public names imported on first use) and the deprecated old paths
    **dict.fromkeys(
        [
            "",
            "isolation_forest",
            "extended_isolation_forest",
            "_forest",
            "_forest_format",
            "alert_store",
            "registry",
            "pipeline_cli",
        ],
        FACADE,
    ),
}


def _module_name(path):
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _own_imports(path):
    """Modules of the package that ``path`` imports (at any depth, lazy
    imports included), as names relative to the package."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            bases = [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                module = ".".join(["anomaly_fast", *base, *([node.module] if node.module else [])])
            else:
                module = node.module
            bases = [(module, [a.name for a in node.names])]
        else:
            continue
        for module, names in bases:
            if module != "anomaly_fast" and not module.startswith("anomaly_fast."):
                continue
            relative = module[len("anomaly_fast.") :] if module != "anomaly_fast" else ""
            for imported in names or [None]:
                sub = f"{relative}.{imported}".lstrip(".") if imported else None
                if sub is not None and sub in LAYERS:
                    found.add(sub)  # `from . import _isolation`: the submodule
                elif relative == "" and imported is not None:
                    # a public name of the package: the module that defines it
                    target = anomaly_fast._EXPORTS.get(imported)
                    if target is not None:
                        found.add(target.lstrip("."))
                else:
                    found.add(relative)
    return found


def test_every_module_has_a_layer():
    missing = sorted(n for n in map(_module_name, _modules()) if n not in LAYERS)
    assert missing == [], f"place these modules in tests/test_layout.py LAYERS: {missing}"


def test_no_module_imports_a_layer_above_its_own():
    upward = {}
    for path in _modules():
        name = _module_name(path)
        for target in _own_imports(path):
            if target not in LAYERS:
                upward.setdefault(name, []).append(f"{target} (not in LAYERS)")
            elif LAYERS[target] > LAYERS[name]:
                upward.setdefault(name, []).append(target)
    assert upward == {}


def test_the_import_scanner_sees_relative_lazy_and_package_imports():
    # the direction check would pass vacuously if the scanner resolved nothing
    assert {"_isolation", "_checks", "_sklearn_compat", "forest.format"} <= _own_imports(PACKAGE / "forest" / "base.py")
    assert "forest.isolation_forest" in _own_imports(PACKAGE / "pipeline" / "registry.py")
    assert "forest" in _own_imports(PACKAGE / "bench" / "forest.py")  # `from .. import IsolationForest`


def test_tests_outside_the_benchmark_tests_do_not_import_the_benchmark_package():
    tests = pathlib.Path(__file__).parent
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        if path.parent.name == "bench" or path.name == "test_cli.py":  # they test the benchmark commands
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            if (module or "").startswith("anomaly_fast.bench") or any(
                n.startswith("anomaly_fast.bench") for n in names
            ):
                offenders.append(path.name)
    assert offenders == []
