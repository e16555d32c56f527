"""The .pyi stubs of the compiled modules name exactly what the modules export."""

import ast
import importlib
import inspect
import pathlib
import types

import pytest

import anomaly_fast

PACKAGE = pathlib.Path(anomaly_fast.__file__).parent
NATIVE = PACKAGE.parent / "native"
COMPILED = sorted(p.stem for p in PACKAGE.glob("_*.pyi"))


def _stub_names(path):
    """Module-level names of a stub, and the members of each of its classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names, members = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        if isinstance(node, ast.ClassDef):
            members[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)} - {"__init__"}
    return names, members


def _module_names(module):
    names = {n for n, v in vars(module).items() if not n.startswith("__") and not isinstance(v, types.ModuleType)}
    members = {
        n: {k for k in vars(v) if not (k.startswith("__") and k.endswith("__"))}
        for n, v in vars(module).items()
        if inspect.isclass(v) and v.__module__ == module.__name__
    }
    return names, members


def test_every_compiled_module_has_a_stub():
    # (skipped by a checkout whose sources moved elsewhere: the stubs sit next to the .so)
    if not NATIVE.is_dir():
        pytest.skip("no native/ sources next to the package")
    assert sorted(p.stem for p in NATIVE.glob("*.pyx")) == COMPILED


@pytest.mark.parametrize("name", COMPILED)
def test_a_stub_names_exactly_the_public_names_of_its_compiled_module(name):
    module = importlib.import_module(f"anomaly_fast.{name}")
    assert module.__file__.endswith((".so", ".pyd")), module.__file__
    assert _stub_names(PACKAGE / f"{name}.pyi") == _module_names(module)


def test_the_package_is_marked_typed():
    assert (PACKAGE / "py.typed").is_file()
