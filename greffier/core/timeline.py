"""Map a track's stream time (seconds of audio received) to meeting time.

Audio stops flowing while a track is muted; counting samples alone would then drift behind the
meeting. :class:`StreamTimeline` re-anchors whenever the wall clock runs ahead of the audio by
more than ``tolerance_s``. A stall (the network or a busy process holding audio back, then
delivering it in a burst) looks the same at first, but the burst arrives ahead of the new
anchor: the anchor is then moved back to the earliest arrival seen, so stalls do not add up
into a drift. A pure class: the caller passes the times.
"""

from __future__ import annotations

import bisect


class StreamTimeline:
    """Piecewise mapping from stream seconds to meeting seconds."""

    def __init__(self, *, tolerance_s: float = 0.5) -> None:
        self.tolerance_s = tolerance_s
        self._stream: list[float] = []
        self._meeting: list[float] = []
        self._received = 0.0

    @property
    def received_s(self) -> float:
        """Seconds of audio received so far."""
        return self._received

    def on_audio(self, duration_s: float, meeting_now: float) -> None:
        """Record ``duration_s`` of audio that finished arriving at meeting time ``meeting_now``."""
        # How far meeting time is ahead of stream time for this chunk (its start).
        offset = meeting_now - duration_s - self._received
        if not self._stream:
            self._add(self._received, self._received + offset)
        else:
            current = self._meeting[-1] - self._stream[-1]
            if offset - current > self.tolerance_s:
                self._add(self._received, self._received + offset)  # a gap (or a stall)
            elif offset < current:
                # Audio arrived earlier than the anchor says: the anchor came from a stall (or
                # from a slow first chunk). Move it back, never before the previous piece.
                floor = self._meeting[-2] - self._stream[-2] if len(self._stream) > 1 else offset
                lowered = max(offset, floor)
                if len(self._stream) > 1 and lowered <= floor:
                    self._stream.pop()
                    self._meeting.pop()
                else:
                    self._meeting[-1] = self._stream[-1] + lowered
        self._received += duration_s

    def _add(self, stream_t: float, meeting_t: float) -> None:
        if self._stream and self._stream[-1] == stream_t:
            self._meeting[-1] = meeting_t
        else:
            self._stream.append(stream_t)
            self._meeting.append(meeting_t)

    def to_meeting(self, stream_t: float) -> float:
        """Meeting time of a stream time (extrapolated before the first anchor)."""
        if not self._stream:
            return stream_t
        i = max(0, bisect.bisect_right(self._stream, stream_t) - 1)
        return self._meeting[i] + (stream_t - self._stream[i])
