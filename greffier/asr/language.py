"""Per-stream language choice: forced, or detected, held, and re-checked on the first finals."""

from __future__ import annotations

from collections import defaultdict


class LanguageTracker:
    """A pure policy.

    With a forced language, that language. Otherwise each decode made without a language
    reports Whisper's guess and its probability. Once ``lock_after_s`` seconds of speech have
    been heard, the language with the most probability-weighted speech is *held* for interims;
    it is provisional until ``confirm_after_s`` seconds have been heard: until then finals of at
    least ``recheck_min_s`` are decoded without a language (Whisper detects it on the whole
    utterance, more reliably than on a first interim) and their guesses keep voting, so a badly
    recognised first segment does not fix the language for the rest of the stream. A silence
    longer than ``recheck_after_silence_s`` (a new speaker, perhaps) starts detection again.
    """

    def __init__(
        self,
        forced: str | None = None,
        *,
        multilingual: bool = True,
        lock_after_s: float = 3.0,
        confirm_after_s: float = 15.0,
        recheck_min_s: float = 1.5,
        recheck_after_silence_s: float = 60.0,
    ) -> None:
        self._forced = forced if multilingual else "en"
        self.lock_after_s = lock_after_s
        self.confirm_after_s = confirm_after_s
        self.recheck_min_s = recheck_min_s
        self.recheck_after_silence_s = recheck_after_silence_s
        self._held: str | None = None
        self._votes: dict[str, float] = defaultdict(float)
        self._heard = 0.0
        self.changes = 0
        """How many times a held language was replaced by a re-check."""

    @property
    def language(self) -> str | None:
        """The language to decode interims with; None means: let Whisper detect it."""
        return self._forced or self._held

    @property
    def is_forced(self) -> bool:
        return self._forced is not None

    @property
    def confirmed(self) -> bool:
        """Forced, or held after ``confirm_after_s`` of speech."""
        return self._forced is not None or (
            self._held is not None and self._heard >= self.confirm_after_s
        )

    def for_final(self, speech_s: float) -> str | None:
        """The language to decode a final of ``speech_s`` seconds with (None: detect it)."""
        if self.confirmed or speech_s < self.recheck_min_s:
            return self.language
        return None

    def force(self, language: str | None) -> None:
        """Force a language (participant attribute or settings), or None to detect."""
        self._forced = language or None
        if language is None:
            self._held = None

    def observe(self, language: str, probability: float, speech_s: float) -> None:
        """Record Whisper's guess, made without a language, for ``speech_s`` s of speech."""
        if self.confirmed or not language:
            return
        self._votes[language] += probability * speech_s
        self._heard += speech_s
        if self._heard >= self.lock_after_s:
            best = max(self._votes.items(), key=lambda kv: kv[1])[0]
            if self._held is not None and best != self._held:
                self.changes += 1
            self._held = best

    def silence(self, duration_s: float) -> None:
        """Report a silence; a long one releases a detected (not forced) language."""
        if duration_s >= self.recheck_after_silence_s and self._held is not None:
            self._held = None
            self._votes.clear()
            self._heard = 0.0
