"""Module ``__getattr__`` for the old module paths of issue 12's layout.

A module that moved (``anomaly_fast.isolation_forest`` is now
``anomaly_fast.forest.isolation_forest``) leaves a shim at its old path
for one release: looking a name up on it returns the object from the new
home with a ``DeprecationWarning``.  Old pickles and joblib files name
their classes by the old path, and unpickling looks them up this way, so
they still load.
"""

import importlib
import warnings


def moved_module(old, new):
    """Return the module ``__getattr__`` for the shim left at ``old``.

    The shim defines no ``__dir__``: tools that walk ``dir(module)`` (pytest's
    doctest collection, IDEs) then see no moved name and warn about nothing.

    Parameters
    ----------
    old : str
        The deprecated module path (the shim's ``__name__``).
    new : str
        Where the module lives now.

    Examples
    --------
    >>> import warnings
    >>> getattr_ = moved_module("anomaly_fast.old", "anomaly_fast.forest.format")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     getattr_("FORMAT")
    'anomaly_fast.forest/4'
    >>> caught[0].category.__name__
    'DeprecationWarning'
    """

    def __getattr__(name):
        if name.startswith("__"):  # module protocol lookups (__path__, __test__, ...): not moved names
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        module = importlib.import_module(new)
        try:
            value = getattr(module, name)
        except AttributeError:
            raise AttributeError(f"module {old!r} (now {new!r}) has no attribute {name!r}") from None
        warnings.warn(
            f"{old} is deprecated and will be removed in the next release: import {name} from {new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    return __getattr__
