"""One Whisper model serving every stream of every room in the process.

A scheduler thread takes decode requests from all streams and runs them on the model, never on
an event loop. Policy, in order:

1. Finals before interims; within a kind, the oldest audio first (fairness across streams).
2. Requests of the same beam width are decoded together, up to ``max_batch_size`` (CTranslate2
   batched generation; useful on GPU, 1 on CPU).
3. Bounded queues: a stream has at most one pending interim; a newer interim replaces it (the
   older one is *superseded*), and an interim that waited more than ``interim_max_wait_s`` is
   dropped. Under overload interims thin out first; then finals lose their beam search (a
   final decoded while other finals wait uses beam 1); finals are never dropped. A stream
   awaits its final before it continues, so pending finals are bounded by the number of
   streams.
4. Lag (time from submission to result) is measured per stream and logged when it exceeds
   ``lag_warning_s``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import itertools
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from greffier.asr.whisper import DecodeOptions, WhisperDecoder
from greffier.core import metrics
from greffier.core.audio import SAMPLE_RATE, FloatArray
from greffier.core.errors import EngineClosedError
from greffier.core.log import get_logger
from greffier.core.priority import lower_thread_priority
from greffier.core.types import Hypothesis

logger = get_logger("asr.engine")


class RequestKind(enum.IntEnum):
    """Priority classes; lower is served first."""

    FINAL = 0
    INTERIM = 1


class Superseded(Exception):
    """An interim request was replaced by a newer one or dropped under load."""


class Decoder(Protocol):
    """What the engine needs from a model (``WhisperDecoder`` in production)."""

    multilingual: bool

    def decode_batch(
        self, requests: Sequence[tuple[FloatArray, DecodeOptions]]
    ) -> list[Hypothesis]: ...


@dataclass(eq=False)
class _Request:
    seq: int
    stream_id: str
    kind: RequestKind
    audio: FloatArray
    options: DecodeOptions
    submitted: float
    future: concurrent.futures.Future[Hypothesis] = field(default_factory=concurrent.futures.Future)


@dataclass(frozen=True, slots=True)
class EngineStats:
    """Counters since the engine started."""

    decoded_finals: int
    decoded_interims: int
    superseded_interims: int
    dropped_interims: int
    degraded_finals: int
    """Finals decoded with beam 1 instead of their beam because other finals were waiting."""
    batches: int
    busy_s: float
    """Seconds the model spent decoding."""
    audio_s: float
    """Seconds of audio decoded (a measure of the work done)."""
    max_lag_s: float
    lag_p95_s: float


def _fail(future: concurrent.futures.Future[Hypothesis], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class InferenceEngine:
    """Schedules decodes of many streams on one model (see the module docstring)."""

    def __init__(
        self,
        decoder: Decoder,
        *,
        max_batch_size: int = 1,
        interim_max_wait_s: float = 1.0,
        lag_warning_s: float = 2.0,
        full_rate_streams: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.decoder = decoder
        self.max_batch_size = max(1, max_batch_size)
        self.interim_max_wait_s = interim_max_wait_s
        self.lag_warning_s = lag_warning_s
        self.full_rate_streams = max(1, full_rate_streams)
        self._clock = clock
        self._last_submit: dict[str, float] = {}
        self._cond = threading.Condition()
        self._finals: deque[_Request] = deque()
        self._interims: dict[str, _Request] = {}
        self._seq = itertools.count()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._lags: deque[float] = deque(maxlen=2000)
        self._stream_lag: dict[str, float] = {}
        self._last_warning: dict[str, float] = defaultdict(lambda: -1e9)
        self._counts = {
            "final": 0,
            "interim": 0,
            "superseded": 0,
            "dropped": 0,
            "batches": 0,
            "degraded": 0,
        }
        self._busy = 0.0
        self._audio = 0.0
        self._max_lag = 0.0

    @property
    def multilingual(self) -> bool:
        return self.decoder.multilingual

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> InferenceEngine:
        """Start the scheduler thread (idempotent)."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="greffier-inference", daemon=True
                )
                self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop accepting work, finish pending finals, cancel pending interims."""
        with self._cond:
            self._closed = True
            for req in self._interims.values():
                _fail(req.future, Superseded("engine closed"))
            self._interims.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- submission ----------------------------------------------------------------------

    def submit(
        self, stream_id: str, kind: RequestKind, audio: FloatArray, options: DecodeOptions
    ) -> concurrent.futures.Future[Hypothesis]:
        """Queue a decode; thread-safe. An interim supersedes the stream's pending interim."""
        req = _Request(
            next(self._seq),
            stream_id,
            kind,
            np.asarray(audio, np.float32),
            options,
            self._clock(),
        )
        with self._cond:
            if self._closed:
                raise EngineClosedError("the inference engine is closed")
            self._last_submit[stream_id] = req.submitted
            if kind is RequestKind.FINAL:
                self._finals.append(req)
                # The stream's waiting interim would only arrive after this final: drop it.
                stale = self._interims.pop(stream_id, None)
                if stale is not None:
                    self._counts["superseded"] += 1
                    _fail(stale.future, Superseded("a final of the stream came first"))
            else:
                old = self._interims.pop(stream_id, None)
                if old is not None:
                    self._counts["superseded"] += 1
                    _fail(old.future, Superseded("a newer interim replaced it"))
                self._interims[stream_id] = req
            self._cond.notify()
        if self._thread is None:
            self.start()
        return req.future

    async def decode(
        self, stream_id: str, kind: RequestKind, audio: FloatArray, options: DecodeOptions
    ) -> Hypothesis:
        """Awaitable :meth:`submit`, usable from any event loop."""
        return await asyncio.wrap_future(self.submit(stream_id, kind, audio, options))

    def interim_spacing(self, window_s: float = 3.0) -> float:
        """How much streams should stretch their interim interval now (>= 1): the number of
        streams that asked for a decode in the last ``window_s`` over ``full_rate_streams``, to
        the power 1.5 (measured on 2 cores: linear left 4 streams' p95 final at 2.05 s).
        The first step of the overload policy: interims thin out in proportion to the speakers,
        so that finals keep their latency; stale interims are then dropped, finals never."""
        now = self._clock()
        with self._cond:
            active = sum(1 for t in self._last_submit.values() if now - t <= window_s)
        return float(max(1.0, active / self.full_rate_streams) ** 1.5)

    def forget(self, stream_id: str) -> None:
        """Cancel a closed stream's pending interim."""
        with self._cond:
            self._last_submit.pop(stream_id, None)
            old = self._interims.pop(stream_id, None)
            if old is not None:
                _fail(old.future, Superseded("stream closed"))
            self._stream_lag.pop(stream_id, None)

    # -- scheduling ----------------------------------------------------------------------

    def _take_batch(self) -> list[_Request]:
        """Pick the next batch (lock held)."""
        now = self._clock()
        for sid, req in list(self._interims.items()):
            if now - req.submitted > self.interim_max_wait_s:
                del self._interims[sid]
                self._counts["dropped"] += 1
                metrics.dropped_interim()
                _fail(req.future, Superseded("dropped: waited too long"))
        candidates: list[_Request] = sorted(self._finals, key=lambda r: r.seq)
        candidates += sorted(self._interims.values(), key=lambda r: r.submitted)
        if not candidates:
            return []
        first = candidates[0]
        batch = [first]
        for req in candidates[1:]:
            if len(batch) >= self.max_batch_size:
                break
            if req.options.beam_size == first.options.beam_size:
                batch.append(req)
        for req in batch:
            if req.kind is RequestKind.FINAL:
                self._finals.remove(req)
            else:
                del self._interims[req.stream_id]
        if self._finals and first.kind is RequestKind.FINAL and first.options.beam_size > 1:
            # Other finals wait: give up beam search rather than make them wait longer.
            self._counts["degraded"] += len(batch)
            for req in batch:
                req.options = replace(req.options, beam_size=1)
        return batch

    def _loop(self) -> None:
        lower_thread_priority()  # captions and audio go first (core.priority)
        while True:
            with self._cond:
                while not self._finals and not self._interims and not self._closed:
                    self._cond.wait()
                if self._closed and not self._finals:
                    return
                batch = self._take_batch()
            if not batch:
                continue
            batch = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            started = self._clock()
            try:
                results = self.decoder.decode_batch([(r.audio, r.options) for r in batch])
            except Exception as e:  # noqa: BLE001 - delivered to every waiting stream
                logger.exception("decoding a batch of %d failed", len(batch))
                for r in batch:
                    _fail(r.future, e)
                continue
            done = self._clock()
            if logger.isEnabledFor(10):
                logger.debug(
                    "decoded %d %s request(s), %.1f s of audio, in %.3f s after %.3f s queued",
                    len(batch),
                    batch[0].kind.name.lower(),
                    sum(r.audio.size for r in batch) / SAMPLE_RATE,
                    done - started,
                    started - min(r.submitted for r in batch),
                )
            self._account(batch, started, done)
            metrics.engine_batch(
                batch[0].kind.name.lower(),
                done - started,
                [(r.stream_id, started - r.submitted) for r in batch],
                len(self._finals) + len(self._interims),
            )
            for r, hyp in zip(batch, results, strict=True):
                if not r.future.done():
                    r.future.set_result(hyp)

    def _account(self, batch: list[_Request], started: float, done: float) -> None:
        with self._cond:
            self._counts["batches"] += 1
            self._busy += done - started
            for r in batch:
                self._audio += r.audio.size / SAMPLE_RATE
                self._counts["final" if r.kind is RequestKind.FINAL else "interim"] += 1
                lag = done - r.submitted
                self._lags.append(lag)
                self._max_lag = max(self._max_lag, lag)
                self._stream_lag[r.stream_id] = lag
                if lag > self.lag_warning_s and done - self._last_warning[r.stream_id] > 10:
                    self._last_warning[r.stream_id] = done
                    logger.warning(
                        "stream %s lags: a %s decode took %.2f s from submission "
                        "(%d streams waiting)",
                        r.stream_id,
                        r.kind.name.lower(),
                        lag,
                        len(self._interims) + len(self._finals),
                    )

    # -- observation ---------------------------------------------------------------------

    def stream_lag(self, stream_id: str) -> float:
        """Lag of the stream's most recent decode, in seconds."""
        with self._cond:
            return self._stream_lag.get(stream_id, 0.0)

    def stats(self) -> EngineStats:
        """A snapshot of the counters."""
        with self._cond:
            lags = sorted(self._lags)
            p95 = lags[int(0.95 * (len(lags) - 1))] if lags else 0.0
            return EngineStats(
                decoded_finals=self._counts["final"],
                decoded_interims=self._counts["interim"],
                superseded_interims=self._counts["superseded"],
                dropped_interims=self._counts["dropped"],
                degraded_finals=self._counts["degraded"],
                batches=self._counts["batches"],
                busy_s=self._busy,
                audio_s=self._audio,
                max_lag_s=self._max_lag,
                lag_p95_s=p95,
            )


def engine_for(decoder: WhisperDecoder, max_batch_size: int = 0) -> InferenceEngine:
    """The engine for a loaded model, started. ``max_batch_size`` 0 picks by device: 8 on
    CUDA (batched generation), 1 on CPU (measured: batching there raised latency). Interims
    thin out above ``full_rate_streams`` speakers: 2 on CPU (measured on 2 cores), the batch
    size on CUDA (not measured here)."""
    cuda = decoder.device.device == "cuda"
    batch = max_batch_size or (8 if cuda else 1)
    return InferenceEngine(
        decoder, max_batch_size=batch, full_rate_streams=batch if cuda else 2
    ).start()
