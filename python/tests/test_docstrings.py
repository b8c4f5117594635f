"""Every public class, function, method and property of the package has a docstring (what
`help(accord)` shows)."""

import inspect
from typing import List

import accord
import accord.aio

# Protocol methods whose meaning the class docstring gives.
DUNDERS_DOCUMENTED_BY_CLASS = ("__enter__", "__exit__", "__iter__", "__aenter__", "__aexit__", "__aiter__")


def undocumented() -> List[str]:
    missing: List[str] = []
    for module in (accord, accord.aio):
        for name in getattr(module, "__all__", [n for n in dir(module) if not n.startswith("_")]):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not (obj.__doc__ or "").strip():
                missing.append(f"{module.__name__}.{name}")
            if not inspect.isclass(obj):
                continue
            for attr, member in vars(obj).items():
                if attr.startswith("_") or attr in DUNDERS_DOCUMENTED_BY_CLASS:
                    continue
                if callable(member) or isinstance(member, property):
                    if not (getattr(member, "__doc__", None) or "").strip():
                        missing.append(f"{module.__name__}.{name}.{attr}")
    return missing


def test_every_public_name_has_a_docstring() -> None:
    assert undocumented() == []
