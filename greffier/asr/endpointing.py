"""Utterance endpointing from VAD probabilities: a pure policy, one decision per window.

Durations are set in seconds (:class:`~greffier.core.config.VadSettings`) and turned into VAD
windows here, once (:func:`windows`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from greffier.asr.vad import WINDOW_S
from greffier.core.config import VadSettings

_DEFAULT = VadSettings()


def windows(seconds: float) -> int:
    """Whole VAD windows in ``seconds`` (at least one)."""
    return max(1, round(seconds / WINDOW_S))


class EndpointEvent(enum.StrEnum):
    """What a VAD window changes."""

    SPEECH_STARTED = "speech_started"
    """Speech has lasted ``min_speech`` windows; :attr:`Endpoint.window` is where it began."""
    PAUSE_STARTED = "pause_started"
    """Speech just dropped below the off threshold (maybe the end of the utterance), at
    :attr:`Endpoint.window`."""
    SPEECH_RESUMED = "speech_resumed"
    """A pause ended before it became an endpoint."""
    SPEECH_ENDED = "speech_ended"
    """The pause lasted ``min_silence`` windows; :attr:`Endpoint.window` is where it began
    (the end of the utterance)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    event: EndpointEvent
    window: int
    """Index of the window where the event's boundary lies (start or end of speech)."""


class Endpointer:
    """Hysteresis endpointing (as Silero's VADIterator): speech starts when the probability
    reaches ``threshold`` for ``min_speech_windows``, and ends after ``min_silence_windows``
    below ``threshold - 0.15``."""

    def __init__(
        self,
        *,
        threshold: float = _DEFAULT.threshold,
        min_speech_windows: int = windows(_DEFAULT.min_speech_s),
        min_silence_windows: int = windows(_DEFAULT.min_silence_s),
    ) -> None:
        self.on = threshold
        self.off = max(0.01, threshold - 0.15)
        self.min_speech = max(1, min_speech_windows)
        self.min_silence = max(1, min_silence_windows)
        self._index = -1
        self._in_speech = False
        self._candidate_start: int | None = None
        self._speech_run = 0
        self._pause_start: int | None = None

    @classmethod
    def from_settings(cls, vad: VadSettings) -> Endpointer:
        """An endpointer with the durations of ``vad`` (seconds) in VAD windows."""
        return cls(
            threshold=vad.threshold,
            min_speech_windows=windows(vad.min_speech_s),
            min_silence_windows=windows(vad.min_silence_s),
        )

    @property
    def in_speech(self) -> bool:
        """True between SPEECH_STARTED and SPEECH_ENDED."""
        return self._in_speech

    @property
    def window_index(self) -> int:
        """Index of the last window seen."""
        return self._index

    def update(self, probability: float) -> list[Endpoint]:
        """Feed the next window's speech probability; returns the events it causes."""
        self._index += 1
        i = self._index
        events: list[Endpoint] = []
        if not self._in_speech:
            if probability >= self.on:
                if self._candidate_start is None:
                    self._candidate_start = i
                self._speech_run += 1
                if self._speech_run >= self.min_speech:
                    self._in_speech = True
                    events.append(Endpoint(EndpointEvent.SPEECH_STARTED, self._candidate_start))
                    self._candidate_start = None
                    self._speech_run = 0
            elif probability < self.off:
                self._candidate_start = None
                self._speech_run = 0
            return events
        if probability < self.off:
            if self._pause_start is None:
                self._pause_start = i
                events.append(Endpoint(EndpointEvent.PAUSE_STARTED, i))
            if i - self._pause_start + 1 >= self.min_silence:
                events.append(Endpoint(EndpointEvent.SPEECH_ENDED, self._pause_start))
                self._in_speech = False
                self._pause_start = None
        elif probability >= self.on and self._pause_start is not None:
            events.append(Endpoint(EndpointEvent.SPEECH_RESUMED, i))
            self._pause_start = None
        return events

    def force_end(self) -> Endpoint | None:
        """End the current utterance now (flush); None when not in speech."""
        if not self._in_speech:
            self._candidate_start = None
            self._speech_run = 0
            return None
        end = self._pause_start if self._pause_start is not None else self._index + 1
        self._in_speech = False
        self._pause_start = None
        return Endpoint(EndpointEvent.SPEECH_ENDED, end)
