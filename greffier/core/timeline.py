"""Map a track's stream time (seconds of audio received) to meeting time.

Audio stops flowing while a track is muted or the network stalls; counting samples alone would
then drift behind the meeting. :class:`StreamTimeline` re-anchors whenever the wall clock runs
ahead of the audio by more than ``tolerance_s``. A pure class: the caller passes the times.
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
        chunk_start_meeting = meeting_now - duration_s
        if not self._stream:
            self._add(self._received, chunk_start_meeting)
        else:
            expected = self.to_meeting(self._received)
            if chunk_start_meeting - expected > self.tolerance_s:
                self._add(self._received, chunk_start_meeting)
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
