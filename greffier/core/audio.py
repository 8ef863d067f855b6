"""Audio helpers: sample formats, channel mixing, resampling and file decoding.

Everything inside greffier works on float32 mono at :data:`SAMPLE_RATE` (16 kHz, what Whisper,
Silero VAD and pyannote expect). Conversions happen once, where audio enters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from greffier.core.errors import AudioFormatError, GreffierError, MissingDependencyError

SAMPLE_RATE = 16_000
"""The one sample rate used inside greffier."""

FloatArray = npt.NDArray[np.float32]


def pcm16_to_float32(pcm: bytes | bytearray | memoryview | npt.NDArray[np.int16]) -> FloatArray:
    """Interleaved signed 16-bit PCM to float32 in [-1, 1)."""
    data = np.frombuffer(pcm, dtype=np.int16) if not isinstance(pcm, np.ndarray) else pcm
    return (data.astype(np.float32) / 32768.0).astype(np.float32, copy=False)


def float32_to_pcm16(samples: npt.NDArray[np.floating]) -> npt.NDArray[np.int16]:
    """float32 in [-1, 1] to signed 16-bit PCM (clipped)."""
    clipped = np.clip(samples, -1.0, 32767.0 / 32768.0)
    return np.round(clipped * 32768.0).astype(np.int16)


def to_mono(interleaved: npt.NDArray[np.floating], num_channels: int) -> FloatArray:
    """Average interleaved channels into one."""
    if num_channels < 1:
        raise AudioFormatError(f"invalid channel count {num_channels}")
    if num_channels == 1:
        return np.asarray(interleaved, dtype=np.float32)
    if interleaved.size % num_channels:
        raise AudioFormatError(
            f"{interleaved.size} samples cannot be split into {num_channels} channels"
        )
    frames = np.asarray(interleaved, dtype=np.float32).reshape(-1, num_channels)
    return frames.mean(axis=1).astype(np.float32)


class StreamResampler:
    """Stateful band-limited resampler (Kaiser-windowed sinc) for audio arriving in chunks.

    Chunks may have any length; the output is continuous across chunks and identical to
    resampling the concatenated signal. :meth:`flush` drains the filter delay at the end.
    """

    def __init__(self, from_rate: int, to_rate: int = SAMPLE_RATE, *, half_width: int = 16):
        if from_rate <= 0 or to_rate <= 0:
            raise AudioFormatError(f"invalid sample rates {from_rate} -> {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._ratio = from_rate / to_rate
        self._cutoff = min(1.0, to_rate / from_rate)
        # Taps on each side, counted at the input rate (wider when downsampling).
        self._half = int(math.ceil(half_width / self._cutoff))
        self._beta = 8.0
        self._buf = np.zeros(self._half, dtype=np.float32)  # zeros stand for before the start
        self._buf_start = -self._half  # input index of _buf[0]
        self._total_in = 0
        self._next_out = 0

    def _produce(self, last_out: int) -> FloatArray:
        n_out = last_out - self._next_out + 1
        if n_out <= 0:
            return np.zeros(0, np.float32)
        positions = (self._next_out + np.arange(n_out)) * self._ratio - self._buf_start
        centres = np.floor(positions).astype(np.int64)
        offsets = np.arange(-self._half + 1, self._half + 1)
        idx = centres[:, None] + offsets[None, :]
        dist = positions[:, None] - idx
        kernel = self._cutoff * np.sinc(dist * self._cutoff)
        kernel *= np.i0(self._beta * np.sqrt(np.clip(1 - (dist / self._half) ** 2, 0, 1)))
        kernel /= np.i0(self._beta)
        np.clip(idx, 0, self._buf.size - 1, out=idx)
        out = (self._buf[idx] * kernel).sum(axis=1).astype(np.float32)
        self._next_out = last_out + 1
        # Drop input no future output can reach.
        first_needed = int(math.floor(self._next_out * self._ratio)) - self._half
        drop = first_needed - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return out

    def process(self, chunk: npt.NDArray[np.floating]) -> FloatArray:
        """Resample the next chunk; returns what can be produced without future input."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if self.from_rate == self.to_rate:
            return chunk
        self._buf = np.concatenate([self._buf, chunk])
        self._total_in += chunk.size
        # Output n sits at input position n * ratio and needs inputs up to floor(pos) + half.
        last_out = int(math.floor((self._total_in - 1 - self._half) / self._ratio))
        return self._produce(last_out)

    def flush(self) -> FloatArray:
        """Drain the filter delay with zeros (call once, at the end of the stream)."""
        if self.from_rate == self.to_rate:
            return np.zeros(0, np.float32)
        self._buf = np.concatenate([self._buf, np.zeros(self._half + 1, np.float32)])
        last_out = int(math.ceil(self._total_in / self._ratio)) - 1
        return self._produce(last_out)


def resample(
    samples: npt.NDArray[np.floating], from_rate: int, to_rate: int = SAMPLE_RATE
) -> FloatArray:
    """Resample a whole signal (band-limited)."""
    if from_rate == to_rate:
        return np.asarray(samples, dtype=np.float32)
    rs = StreamResampler(from_rate, to_rate)
    return np.concatenate([rs.process(samples), rs.flush()])


def normalize_chunk(
    samples: npt.NDArray[np.generic], sample_rate: int, num_channels: int = 1
) -> FloatArray:
    """Any interleaved int16/float chunk to float32 mono at 16 kHz (stateless; whole signals)."""
    if samples.dtype == np.int16:
        data = pcm16_to_float32(samples.view(np.int16))
    elif np.issubdtype(samples.dtype, np.floating):
        data = np.asarray(samples, dtype=np.float32)
    else:
        raise AudioFormatError(f"unsupported sample type {samples.dtype}; give int16 or float32")
    return resample(to_mono(data, num_channels), sample_rate, SAMPLE_RATE)


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What a decoded file held before conversion."""

    sample_rate: int
    num_channels: int
    duration: float


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> FloatArray:
    """Decode any audio or video file FFmpeg reads into float32 mono at ``sample_rate``.

    Uses PyAV (its wheels bundle FFmpeg), so no system ffmpeg is needed.
    """
    return read_audio_with_info(path, sample_rate)[0]


def read_audio_with_info(
    path: str | Path, sample_rate: int = SAMPLE_RATE
) -> tuple[FloatArray, AudioInfo]:
    """Like :func:`read_audio`, also returning the source's rate, channels and duration."""
    try:
        import av
    except ImportError as e:  # pragma: no cover - av ships with the asr extra
        raise MissingDependencyError.for_extra("av", "asr") from e
    path = Path(path)
    if not path.is_file():
        raise AudioFormatError(f"no such audio file: {path}")
    chunks: list[FloatArray] = []
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioFormatError(f"{path.name} has no audio stream")
            stream = container.streams.audio[0]
            info_rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            info_channels = int(stream.codec_context.channels or 1)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    except AudioFormatError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as e:
        raise AudioFormatError(
            f"cannot decode {path.name}: {e}", hint="give a file FFmpeg can read"
        ) from e
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return audio, AudioInfo(info_rate, info_channels, audio.size / sample_rate)


class AudioTooLongError(GreffierError):
    """A recording longer than the duration allowed."""

    def __init__(self, message: str, *, hint: str = "", decoded_s: float = 0.0) -> None:
        super().__init__(message, hint=hint)
        self.decoded_s = decoded_s
        """Seconds of audio decoded before the refusal (0: refused from the metadata)."""


def read_audio_bounded(
    path: str | Path,
    max_duration_s: float,
    sample_rate: int = SAMPLE_RATE,
    *,
    check: Callable[[float], None] | None = None,
) -> tuple[FloatArray, AudioInfo]:
    """Like :func:`read_audio_with_info`, never holding more than ``max_duration_s`` of audio.

    Refused (AudioTooLongError) from the container's declared duration before decoding, and
    as soon as the decoded audio passes the limit (a container may declare nothing, or lie):
    the audio is decoded frame by frame into a buffer that grows up to the limit, no further.
    ``check`` receives the seconds decoded so far after each frame (it may raise, e.g. on a
    timeout).
    """
    try:
        import av
    except ImportError as e:  # pragma: no cover - av ships with the asr extra
        raise MissingDependencyError.for_extra("av", "asr") from e
    path = Path(path)
    if not path.is_file():
        raise AudioFormatError(f"no such audio file: {path}")
    limit = int(math.ceil(max_duration_s * sample_rate))
    too_long = f"the recording is longer than {max_duration_s:g} s"
    hint = "cut it into shorter parts (GREFFIER_SERVICE__MAX_DURATION_S sets the limit)"
    buffer = np.zeros(0, np.float32)
    size = 0

    def append(samples: FloatArray) -> None:
        nonlocal buffer, size
        if size + samples.size > limit:
            raise AudioTooLongError(too_long, hint=hint, decoded_s=size / sample_rate)
        if size + samples.size > buffer.size:
            grown = np.empty(min(limit, max(2 * buffer.size, size + samples.size)), np.float32)
            grown[:size] = buffer[:size]
            buffer = grown
        buffer[size : size + samples.size] = samples
        size += samples.size
        if check is not None:
            check(size / sample_rate)

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioFormatError(f"{path.name} has no audio stream")
            stream = container.streams.audio[0]
            declared = _declared_duration(container, stream)
            if declared is not None and declared > max_duration_s + 1.0:
                raise AudioTooLongError(f"{too_long} ({declared:.0f} s)", hint=hint)
            if declared is not None:  # a first guess; the buffer still grows up to the limit
                buffer = np.empty(min(limit, int(declared * sample_rate) + sample_rate), np.float32)
            info_rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            info_channels = int(stream.codec_context.channels or 1)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
            for out in resampler.resample(None):
                append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    except (AudioFormatError, AudioTooLongError):
        raise
    except (av.error.FFmpegError, ValueError, OSError) as e:
        raise AudioFormatError(
            f"cannot decode {path.name}: {e}", hint="give a file FFmpeg can read"
        ) from e
    audio = buffer[:size] if size * 5 >= buffer.size * 4 else buffer[:size].copy()
    return audio, AudioInfo(info_rate, info_channels, size / sample_rate)


def _declared_duration(container: Any, stream: Any) -> float | None:
    """Seconds the container or the stream declares, or None when neither does."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    return None


def frame_energy_dbfs(samples: npt.NDArray[np.floating]) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 0 else float("-inf")
