"""Every public signature carries type hints (issue 12), so editors and type checkers see the API.

The walk covers the names of ``anomaly_fast.__all__`` and of each public
module's ``__all__``: functions, and for classes every public method and
property defined in this package (inherited ones from scikit-learn are
scikit-learn's business).  A parameter or return without an annotation fails
the test; a new public function therefore arrives annotated.
"""

import ast
import importlib
import inspect

import pytest

import anomaly_fast

PUBLIC_MODULES = [
    "anomaly_fast",
    "anomaly_fast.forest",
    "anomaly_fast.forest.explain",
    "anomaly_fast.forest.format",
    "anomaly_fast.streaming",
    "anomaly_fast.ensemble",
    "anomaly_fast.local_outlier_factor",
    "anomaly_fast.evaluation",
    "anomaly_fast.timeseries",
    "anomaly_fast.pipeline",
    "anomaly_fast.pipeline.adaptation",
    "anomaly_fast.pipeline.alert_store",
    "anomaly_fast.pipeline.alert_store_postgres",
    "anomaly_fast.pipeline.cli",
    "anomaly_fast.pipeline.events",
    "anomaly_fast.pipeline.orchestration",
    "anomaly_fast.pipeline.registry",
    "anomaly_fast.pipeline.stream_workers",
    "anomaly_fast.pipeline.suppression",
    "anomaly_fast.pipeline.threshold",
    "anomaly_fast.scale_out",
    "anomaly_fast.cli",
    "anomaly_fast.bench",
]


def _public_names(module):
    return [getattr(module, name) for name in module.__all__]


def _ours(obj):
    return (getattr(obj, "__module__", None) or "").startswith("anomaly_fast")


def _unannotated(func, where):
    """The parameters (and ``return``) of ``func`` that carry no annotation."""
    func = inspect.unwrap(func)
    annotations = getattr(func, "__annotations__", {})
    missing = [
        f"{where}({name})"
        for i, name in enumerate(inspect.signature(func).parameters)
        if name not in annotations and not (i == 0 and name in ("self", "cls"))
    ]
    if "return" not in annotations:
        missing.append(f"{where} -> ?")
    return missing


def _class_members(cls):
    """Public methods and properties of ``cls`` written in this package (its bases included)."""
    seen = set()
    for klass in cls.__mro__:
        if not _ours(klass):
            continue
        for name, value in vars(klass).items():
            if name in seen or (name.startswith("_") and name != "__init__"):
                continue
            seen.add(name)
            if isinstance(value, property):
                yield f"{cls.__name__}.{name}", value.fget
            elif isinstance(value, (staticmethod, classmethod)):
                yield f"{cls.__name__}.{name}", value.__func__
            elif inspect.isfunction(value):
                yield f"{cls.__name__}.{name}", value


def _missing_annotations(module_name):
    module = importlib.import_module(module_name)
    missing = []
    for obj in _public_names(module):
        if inspect.isclass(obj) and _ours(obj):
            for where, func in _class_members(obj):
                if _ours(func):  # compiled methods are typed in the .pyi stubs
                    missing += _unannotated(func, where)
        elif inspect.isfunction(obj) and _ours(obj):
            missing += _unannotated(obj, obj.__name__)
    return missing


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_signature_is_annotated(module_name):
    assert _missing_annotations(module_name) == []


def test_the_walk_finds_what_it_should_check():
    # the test above would pass vacuously if the walk found no function: it finds the estimators' methods
    walked = [where for where, _ in _class_members(anomaly_fast.IsolationForest)]
    assert {"IsolationForest.fit", "IsolationForest.score_samples", "IsolationForest.__init__"} <= set(walked)

    def bare(x, y: int = 0):
        return x

    assert _unannotated(bare, "bare") == ["bare(x)", "bare -> ?"]


def _type_checking_namespace(module):
    """The module's globals plus the names it imports only for type checkers
    (``if TYPE_CHECKING:``), so string annotations can be evaluated."""
    namespace = dict(vars(module))
    tree = ast.parse(inspect.getsource(module))
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            exec(compile(ast.Module(body=node.body, type_ignores=[]), module.__file__, "exec"), namespace)
    return namespace


def _functions(module):
    for obj in _public_names(module):
        if inspect.isclass(obj) and _ours(obj):
            yield from (func for _, func in _class_members(obj) if _ours(func))
        elif inspect.isfunction(obj) and _ours(obj):
            yield obj


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_annotations_name_real_types(module_name):
    # string annotations (``from __future__ import annotations``) must evaluate, with the
    # imports their module makes for type checkers only
    pytest.importorskip("dask.dataframe")  # scale_out's annotations name dask and distributed types
    pytest.importorskip("distributed")
    module = importlib.import_module(module_name)
    for func in _functions(module):
        func = inspect.unwrap(func)
        home = importlib.import_module(func.__module__)
        inspect.get_annotations(func, globals=_type_checking_namespace(home), eval_str=True)
