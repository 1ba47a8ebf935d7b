"""Every cache einopt keeps, registered in one place.

Each stage that memoizes (parses, rewrites, plans, compiled calls, executor pools) makes
its cache here, so that all of them are bounded, safe to share between threads, and
emptied together by :func:`clear_all` (``einopt.clear_caches()``). This module imports
nothing of einopt's: every stage may use it.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["BoundedDict", "memoize", "register", "registered", "clear_all", "Memo"]

K = TypeVar("K")
V = TypeVar("V")
F = TypeVar("F", bound=Callable[..., Any])


class Clearable(Protocol):
    """Anything :func:`clear_all` can empty."""

    def clear(self) -> None: ...


_REGISTRY: dict[str, Clearable] = {}
_LOCK = threading.Lock()


def register(name: str, cache: Clearable) -> None:
    """Add ``cache`` under ``name`` to what :func:`clear_all` empties (a name registered
    again replaces the earlier cache)."""
    with _LOCK:
        _REGISTRY[name] = cache


def registered() -> dict[str, Clearable]:
    """The registered caches by name (a copy)."""
    with _LOCK:
        return dict(_REGISTRY)


def clear_all() -> None:
    """Empty every registered cache."""
    for cache in registered().values():
        cache.clear()


class Memo:
    """``clear`` for an ``functools.lru_cache`` function."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def clear(self) -> None:
        self.fn.cache_clear()

    def __len__(self) -> int:
        return int(self.fn.cache_info().currsize)


def memoize(name: str, maxsize: int) -> Callable[[F], F]:
    """``functools.lru_cache(maxsize)`` (bounded, thread-safe), registered as ``name``."""

    def wrap(fn: F) -> F:
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        register(name, Memo(cached))
        return cached  # type: ignore[return-value]

    return wrap


class BoundedDict(Generic[K, V]):
    """A mapping that holds at most ``maxsize`` entries, dropping the oldest first.

    Reads take no lock (one dict lookup: the hot path of a warm einsum call); writes and
    evictions hold one, so concurrent writers never evict twice or lose the bound.
    ``on_evict`` is called with each value dropped or cleared (an executor pool's
    shutdown, say).
    """

    def __init__(self, name: str, maxsize: int,
                 on_evict: Callable[[V], None] | None = None) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._on_evict = on_evict
        register(name, self)

    def get(self, key: K, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._data))

    def values(self) -> list[V]:
        """The values held now, oldest first (a snapshot)."""
        return list(self._data.values())

    def __setitem__(self, key: K, value: V) -> None:
        dropped = []
        with self._lock:
            self._data[key] = value
            while len(self._data) > self.maxsize:
                dropped.append(self._data.popitem(last=False)[1])
        for v in dropped:
            self._evicted(v)

    def setdefault(self, key: K, make: Callable[[], V]) -> V:
        """The value of ``key``, made by ``make()`` and stored when absent (under the
        lock, so concurrent callers share one value)."""
        found = self._data.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[no-any-return]
        dropped = []
        with self._lock:
            value = self._data.get(key, _MISSING)
            if value is _MISSING:
                value = self._data[key] = make()
                while len(self._data) > self.maxsize:
                    dropped.append(self._data.popitem(last=False)[1])
        for v in dropped:
            self._evicted(v)
        return value  # type: ignore[return-value]

    def clear(self) -> None:
        with self._lock:
            values = list(self._data.values())
            self._data.clear()
        for v in values:
            self._evicted(v)

    def _evicted(self, value: V) -> None:
        if self._on_evict is not None:
            self._on_evict(value)


_MISSING = object()
