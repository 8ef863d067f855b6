"""Hallucination guards: Whisper invents text in silence, noise and music. Pure policies."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from greffier.asr.repeats import drop_repeats
from greffier.core.text import normalize_text
from greffier.core.types import Hypothesis, Word

# Phrases Whisper is known to produce on silence or music (subtitle credits seen in its
# training data). Compared after normalisation.
SILENCE_PHRASES: tuple[str, ...] = (
    # French
    "sous-titres réalisés par la communauté d'amara.org",
    "sous-titrage st' 501",
    "sous-titrage st'501",
    "sous-titrage société radio-canada",
    "sous-titres par la communauté d'amara.org",
    "sous-titres fait par la communauté d'amara.org",
    "merci d'avoir regardé",
    "merci d'avoir regardé cette vidéo",
    "merci de votre attention",
    "abonnez-vous",
    "n'oubliez pas de vous abonner",
    "sous-titrage fr",
    # English
    "thank you for watching",
    "thanks for watching",
    "thank you for watching!",
    "thank you so much for watching",
    "please subscribe",
    "please like and subscribe",
    "subtitles by the amara.org community",
    "transcription by castingwords",
)
# Short phrases people do say: rejected only when the decoder itself doubts there was speech.
WEAK_SILENCE_PHRASES: tuple[str, ...] = (
    "thank you",
    "thank you.",
    "you",
    "bye",
    "bye bye",
    "music",
    "applause",
    "silence",
    "merci",
    "merci.",
    "au revoir",
    "musique",
    "applaudissements",
    "...",
)
_PHRASES = {normalize_text(p) for p in SILENCE_PHRASES}
_WEAK = {normalize_text(p) for p in WEAK_SILENCE_PHRASES}
_PHRASE_WORDS = sorted({tuple(p.split()) for p in _PHRASES}, key=len, reverse=True)
_BRACKETED = re.compile(r"^\s*[\[(♪*].*[\])♪*]\s*$")


@dataclass(frozen=True, slots=True)
class GuardOptions:
    """Thresholds (Whisper's own defaults where it has them)."""

    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    min_avg_logprob: float = -1.5
    """Below this a hypothesis is rejected whatever ``no_speech`` says."""
    max_repeats: int = 3
    """An n-gram repeated back to back more than this is cut to one occurrence."""
    min_repeated_phrase: int = 5
    """A phrase of this many words or more said twice in a row keeps one occurrence."""
    weak_no_speech: float = 0.2
    weak_logprob: float = -0.7
    """A short phrase of :data:`WEAK_SILENCE_PHRASES` is dropped when ``no_speech`` is above
    ``weak_no_speech`` or the mean log-probability below ``weak_logprob``."""
    improbable_max_words: int = 2
    improbable_word_probability: float = 0.25
    """A hypothesis of at most ``improbable_max_words`` words, each below this probability,
    is rejected (``improbable``): a filler, breath or cough written as a word ("um" as
    "calm" at 0.13-0.20 on the shared spontaneous recording, where the words people said
    scored 0.3-1.0 even at -40 dBFS and in the phone band)."""


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """The words kept (possibly fewer), or a reason when everything was rejected."""

    words: tuple[Word, ...]
    text: str
    rejected: str = ""
    repeats: int = 0
    """Repeated phrases and loops cut from the words kept."""


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class HallucinationGuard:
    """Decides what of a hypothesis may become a caption."""

    def __init__(self, options: GuardOptions | None = None) -> None:
        self.options = options or GuardOptions()

    def check(self, hyp: Hypothesis) -> GuardVerdict:
        """Filter one hypothesis."""
        o = self.options
        if hyp.no_speech_probability > o.no_speech_threshold and hyp.avg_logprob < (
            o.logprob_threshold
        ):
            return GuardVerdict((), "", "no_speech")
        if hyp.avg_logprob < o.min_avg_logprob:
            return GuardVerdict((), "", "low_logprob")
        words = list(hyp.words)
        text = hyp.text
        if words:
            # A repetition loop is cut to one copy first; when the loop was not most of the
            # hypothesis, the compression ratio judges what is left (a loop after real words
            # is no reason to lose those words).
            before = len(words)
            words = self._strip_repeats(words)
            repeats = int(len(words) < before)
            text = "".join(w.text for w in words).strip()
        else:
            repeats = 0
        ratio = hyp.compression_ratio
        if len(hyp.words) > len(words) >= len(hyp.words) / 2:
            ratio = _compression_ratio(text)
        if ratio > o.compression_ratio_threshold:
            return GuardVerdict((), "", "compression_ratio")
        doubtful = hyp.no_speech_probability > o.weak_no_speech or hyp.avg_logprob < (
            o.weak_logprob
        )
        if words:
            words = self._strip_phrases(words)
            text = "".join(w.text for w in words).strip()
        else:
            text = self._strip_text(text)
        if doubtful and normalize_text(text) in _WEAK:
            return GuardVerdict((), "", "silence_phrase")
        if not normalize_text(text) or _BRACKETED.match(text):
            return GuardVerdict((), "", "silence_phrase" if hyp.text.strip() else "empty")
        if (
            words
            and len(words) <= o.improbable_max_words
            and all(w.probability < o.improbable_word_probability for w in words)
        ):
            return GuardVerdict((), "", "improbable")
        return GuardVerdict(tuple(words), text, repeats=repeats)

    def _strip_repeats(self, words: list[Word]) -> list[Word]:
        keys = [normalize_text(w.text) for w in words]
        n_max = min(6, len(words) // 2)
        for n in range(1, n_max + 1):
            i = 0
            while i + n <= len(keys):
                gram = keys[i : i + n]
                j = i + n
                repeats = 1
                while keys[j : j + n] == gram and gram and any(gram):
                    repeats += 1
                    j += n
                if repeats > self.options.max_repeats:
                    del words[i + n : j]
                    del keys[i + n : j]
                i += 1
        # A whole phrase said twice back to back (Whisper "continues" into its padding by
        # repeating itself); people do not repeat 5 words or more verbatim.
        n = len(keys) // 2
        while n >= self.options.min_repeated_phrase:
            i = 0
            while i + 2 * n <= len(keys):
                if keys[i : i + n] == keys[i + n : i + 2 * n] and all(keys[i : i + n]):
                    del words[i + n : i + 2 * n]
                    del keys[i + n : i + 2 * n]
                    n = min(n, len(keys) // 2)
                    continue
                i += 1
            n -= 1
        # A copy that differs by a word or is cut short (see greffier.asr.repeats).
        kept, _ = drop_repeats(words, min_words=self.options.min_repeated_phrase)
        return list(kept)

    @staticmethod
    def _strip_phrases(words: list[Word]) -> list[Word]:
        keys = [normalize_text(w.text) for w in words]
        # Whole hypothesis is a known phrase.
        if " ".join(k for k in keys if k) in _PHRASES:
            return []
        # A known phrase of 3 words or more trailing real speech.
        for phrase in _PHRASE_WORDS:
            if len(phrase) < 3 or len(phrase) > len(keys):
                continue
            if tuple(" ".join(keys[-len(phrase) :]).split()) == phrase:
                return words[: -len(phrase)]
        return words

    @staticmethod
    def _strip_text(text: str) -> str:
        return "" if normalize_text(text) in _PHRASES else text
