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
                a.name for a in node.names if a.name.startswith("sklearn") and any(p.startswith("_") for p in a.name.split("."))
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
