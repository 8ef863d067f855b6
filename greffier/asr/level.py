"""Slow automatic gain: quiet speech brought to the level the VAD and Whisper expect.

A pure, stateful filter on float32 mono audio, applied before the VAD and the decoder. Silero
VAD and Whisper's log-mel features both depend on the absolute level: speech peaking at
-40 dBFS is often not detected at all. Per 32 ms block of audio:

* a **noise floor** follows the quietest blocks (falls at once, rises ``floor_rise_db_s``);
* the **speech level** follows blocks at least ``snr_gate_db`` above that floor, quickly up
  (``attack_s``), slowly down (``release_s``), so the gain does not pump between words and the
  VAD sees a stable level through an utterance;
* the gain **rises** at most ``max_rise_db_s`` (the first, quiet syllable of a loud stream is
  not boosted before the louder ones set the level) and falls at once;
* the **gain** brings that level to ``target_dbfs``; it never attenuates, never exceeds
  ``max_gain_db``, and never lifts the noise floor above ``noise_ceiling_dbfs`` (silence and
  steady noise are not blown up); a block's peak is never pushed past ``peak_limit``.

Statistics are taken on fixed 32 ms blocks of the stream (whatever the chunk size); the gain
moves linearly over the next block, so it adds no clicks and no delay; a soft limiter catches
a loud onset meeting a high gain. Audio already at a normal
level (speech around -20 dBFS RMS) passes unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from greffier.core.audio import SAMPLE_RATE, FloatArray

_BLOCK = 512
_SILENT_DB = -120.0


@dataclass(frozen=True, slots=True)
class LevelOptions:
    """Tunables of :class:`LevelNormalizer`."""

    enabled: bool = True
    target_dbfs: float = -26.0
    """RMS of active speech after the gain: only speech quieter than this is lifted (a
    normal-level stream is left alone: lifting it to -20 cost 3 points of French WER)."""
    max_gain_db: float = 40.0
    noise_ceiling_dbfs: float = -55.0
    """The gain never lifts the noise floor above this."""
    snr_gate_db: float = 12.0
    """Blocks this far above the floor count as (possible) speech for the level."""
    min_level_dbfs: float = -70.0
    """Blocks quieter than this never count as speech."""
    attack_s: float = 0.01
    release_s: float = 8.0
    max_rise_db_s: float = 40.0
    """The gain rises at most this fast (it falls at once): the quiet first syllable of a
    normal-level stream is not boosted before the louder ones set the level."""
    floor_rise_db_s: float = 2.0
    peak_limit: float = 0.9


def soft_limit(out: FloatArray, limit: float) -> FloatArray:
    """Samples above ``limit`` squeezed towards 1.0, not clipped (in place; returned)."""
    over = np.abs(out) > limit
    if over.any():
        excess = (np.abs(out[over]) - limit) / (1.0 - limit)
        out[over] = np.sign(out[over]) * (limit + (1.0 - limit) * np.tanh(excess))
    return out


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 1e-6 else _SILENT_DB


class LevelNormalizer:
    """See the module docstring. ``process`` returns as many samples as it is given."""

    def __init__(self, options: LevelOptions | None = None, sample_rate: int = SAMPLE_RATE):
        self.options = options or LevelOptions()
        self.sample_rate = sample_rate
        self.floor_db: float | None = None
        self.level_db: float | None = None
        self._gain = 1.0
        self._target = 1.0
        self._ramp_left = 0
        self._pending = np.zeros(_BLOCK, dtype=np.float32)
        self._pending_n = 0

    @property
    def gain_db(self) -> float:
        """The gain applied at the end of the last block."""
        return _db(self._gain)

    def process(self, samples: FloatArray) -> FloatArray:
        """The next samples, level-normalised (a new array; the input is not modified)."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not self.options.enabled or x.size == 0:
            return x
        out = np.empty_like(x)
        pos = 0
        while pos < x.size:
            # statistics on fixed blocks of the stream, whatever the chunk size
            take = min(_BLOCK - self._pending_n, x.size - pos)
            seg = x[pos : pos + take]
            out[pos : pos + take] = seg * self._gains(take)
            self._pending[self._pending_n : self._pending_n + take] = seg
            self._pending_n += take
            if self._pending_n == _BLOCK:
                self._target = self._update(self._pending)
                self._ramp_left = _BLOCK
                self._pending_n = 0
            pos += take
        return soft_limit(out, self.options.peak_limit)

    @property
    def gain(self) -> float:
        """The linear gain applied at the end of the last block."""
        return self._gain

    def apply(self, samples: FloatArray, gain: float) -> FloatArray:
        """``samples`` at one constant ``gain`` (soft-limited): how a decoder should hear a
        buffer once the level has settled, its first words included (the gain was still rising
        while they were spoken)."""
        if gain == 1.0 or not self.options.enabled:
            return samples
        return soft_limit(
            np.asarray(samples, dtype=np.float32) * np.float32(gain), self.options.peak_limit
        )

    def _gains(self, n: int) -> FloatArray:
        """Per-sample gains for the next ``n`` samples: a linear ramp to the target gain."""
        if self._ramp_left <= 0:
            return np.full(n, self._gain, dtype=np.float32)
        step = (self._target - self._gain) / self._ramp_left
        k = np.minimum(np.arange(1, n + 1), self._ramp_left)
        gains = (self._gain + step * k).astype(np.float32)
        used = min(n, self._ramp_left)
        self._gain += step * used
        self._ramp_left -= used
        return gains

    def _update(self, block: FloatArray) -> float:
        """Update floor and level from one block; the gain to reach at its end."""
        o = self.options
        dt = block.size / self.sample_rate
        rms_db = _db(float(np.sqrt(np.mean(np.square(block, dtype=np.float64)))))
        if self.floor_db is None or rms_db < self.floor_db:
            self.floor_db = rms_db
        else:
            self.floor_db = min(rms_db, self.floor_db + o.floor_rise_db_s * dt)
        if rms_db >= max(o.min_level_dbfs, self.floor_db + o.snr_gate_db):
            if self.level_db is None:
                self.level_db = rms_db
            else:
                tau = o.attack_s if rms_db > self.level_db else o.release_s
                self.level_db += (rms_db - self.level_db) * (1.0 - math.exp(-dt / tau))
        if self.level_db is None:
            return 1.0
        gain_db = min(
            o.target_dbfs - self.level_db, o.max_gain_db, o.noise_ceiling_dbfs - self.floor_db
        )
        gain_db = min(max(0.0, gain_db), _db(self._target) + o.max_rise_db_s * dt)
        gain = 10.0 ** (gain_db / 20.0)
        peak = float(np.max(np.abs(block)))
        if peak * gain > o.peak_limit:
            gain = max(1.0, o.peak_limit / peak)
        return gain
