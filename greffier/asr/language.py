"""Per-stream language choice: forced, or detected once enough speech is heard, then held."""

from __future__ import annotations

from collections import defaultdict


class LanguageTracker:
    """A pure policy.

    With a forced language, that language. Otherwise each decode without a language reports
    Whisper's guess and its probability; once ``lock_after_s`` seconds of speech have been
    heard, the language with the most probability-weighted speech is held. A silence longer
    than ``recheck_after_silence_s`` (a new speaker, perhaps) starts detection again.
    """

    def __init__(
        self,
        forced: str | None = None,
        *,
        multilingual: bool = True,
        lock_after_s: float = 3.0,
        recheck_after_silence_s: float = 60.0,
    ) -> None:
        self._forced = forced if multilingual else "en"
        self.lock_after_s = lock_after_s
        self.recheck_after_silence_s = recheck_after_silence_s
        self._held: str | None = None
        self._votes: dict[str, float] = defaultdict(float)
        self._heard = 0.0

    @property
    def language(self) -> str | None:
        """The language to decode with; None means: let Whisper detect it."""
        return self._forced or self._held

    @property
    def is_forced(self) -> bool:
        return self._forced is not None

    def force(self, language: str | None) -> None:
        """Force a language (participant attribute or settings), or None to detect."""
        self._forced = language or None
        if language is None:
            self._held = None

    def observe(self, language: str, probability: float, speech_s: float) -> None:
        """Record Whisper's guess for ``speech_s`` seconds of speech."""
        if self.language is not None or not language:
            return
        self._votes[language] += probability * speech_s
        self._heard += speech_s
        if self._heard >= self.lock_after_s:
            self._held = max(self._votes.items(), key=lambda kv: kv[1])[0]

    def silence(self, duration_s: float) -> None:
        """Report a silence; a long one releases a detected (not forced) language."""
        if duration_s >= self.recheck_after_silence_s and self._held is not None:
            self._held = None
            self._votes.clear()
            self._heard = 0.0
