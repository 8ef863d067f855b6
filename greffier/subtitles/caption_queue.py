"""Live caption policies (pure): what waits to be published, and in which order."""

from __future__ import annotations

from collections import deque

from greffier.core.types import CaptionUpdate


class CaptionQueue:
    """Updates of one track waiting to be published, in order.

    Drop policy: a newer interim of a segment replaces that segment's interim still waiting
    (the screen would show it for an instant only); finals are never dropped, and nothing
    overtakes a final of its segment. Bounded by one waiting interim per segment.
    """

    def __init__(self) -> None:
        self._items: deque[CaptionUpdate] = deque()
        self.coalesced = 0

    def push(self, update: CaptionUpdate) -> None:
        if not update.final:
            for i in range(len(self._items) - 1, -1, -1):
                queued = self._items[i]
                if queued.segment_id != update.segment_id:
                    continue
                if not queued.final:
                    self._items[i] = update
                    self.coalesced += 1
                    return
                break
        self._items.append(update)

    def pop(self) -> CaptionUpdate | None:
        return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._items)
