"""A small thread-safe LRU map bounded by total cost (bytes, or one per entry)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LruCache(Generic[V]):
    """Least recently used entries go first once the summed cost passes `max_cost`.

    An entry costing more than `max_item_cost` is never kept (one big blob must not
    evict everything else).
    """

    def __init__(
        self,
        max_cost: int,
        cost: Callable[[V], int] = lambda _v: 1,
        max_item_cost: int | None = None,
    ) -> None:
        self.max_cost = max_cost
        self.max_item_cost = max_cost if max_item_cost is None else max_item_cost
        self._cost = cost
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            self._entries.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: V) -> None:
        cost = self._cost(value)
        if cost > self.max_item_cost:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= old[1]
            self._entries[key] = (value, cost)
            self._total += cost
            while self._total > self.max_cost and self._entries:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._total -= dropped

    def __len__(self) -> int:
        return len(self._entries)
