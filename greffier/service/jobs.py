"""Batch transcription jobs: one worker thread runs them one at a time, in order, from a
bounded queue; Whisper (and pyannote, when asked) are loaded once per process and shared."""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from greffier.core.audio import read_audio_with_info
from greffier.core.config import Settings
from greffier.core.errors import AudioFormatError, GreffierError
from greffier.core.log import get_logger
from greffier.subtitles.minutes import Minutes

if TYPE_CHECKING:
    from greffier.asr.whisper import WhisperDecoder
    from greffier.diarization.pyannote_adapter import PyannoteDiarizer

logger = get_logger("service.jobs")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


class QueueFullError(GreffierError):
    """The transcription queue holds as many jobs as it may."""


@dataclass
class Job:
    """One transcription request and what became of it (the service's own bookkeeping)."""

    id: str
    filename: str
    """The name the client gave the upload."""
    path: Path
    """Where the upload is kept until the job ends."""
    diarize: bool
    language: str
    created_at: float
    status: str = QUEUED
    started_at: float | None = None
    finished_at: float | None = None
    progress_s: float = 0.0
    duration_s: float | None = None
    error: str | None = None
    minutes: Minutes | None = None


Runner = Callable[[Job, Callable[[float, float], None]], Minutes]
"""Transcribes a job's file (blocking), reporting the seconds of audio done and in all."""


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


class JobQueue:
    """Jobs by id, a bounded FIFO of waiting ones and a single worker thread (started with the
    first job). Finished jobs are kept, the oldest forgotten beyond ``max_kept``."""

    def __init__(self, runner: Runner, *, max_queued: int, max_kept: int) -> None:
        self._runner = runner
        self._max_queued = max_queued
        self._max_kept = max_kept
        self._cond = threading.Condition()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._pending: deque[str] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, job: Job) -> Job:
        """Queue ``job``; raises QueueFullError when ``max_queued`` jobs already wait."""
        with self._cond:
            if self._closed:
                raise QueueFullError("the service is shutting down")
            if len(self._pending) >= self._max_queued:
                raise QueueFullError(
                    f"{len(self._pending)} transcriptions are already waiting",
                    hint="retry once one has finished",
                )
            self._jobs[job.id] = job
            self._pending.append(job.id)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="greffier-transcriptions", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
            return dataclasses.replace(job)

    def get(self, job_id: str) -> tuple[Job, int | None] | None:
        """A copy of the job and its place in the queue (None once it runs), or None."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            position = self._pending.index(job_id) if job.status == QUEUED else None
            return dataclasses.replace(job), position

    def close(self, timeout_s: float = 1.0) -> None:
        """Stop taking jobs; waiting ones fail. A running transcription cannot be interrupted:
        its thread (a daemon) is waited for ``timeout_s`` at most."""
        with self._cond:
            self._closed = True
            while self._pending:
                job = self._jobs[self._pending.popleft()]
                self._finish(job, error="the service stopped before this job ran")
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    # -- worker --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending:
                    return
                job = self._jobs[self._pending.popleft()]
                job.status = RUNNING
                job.started_at = time.time()
            logger.info("job %s started (diarize=%s)", job.id, job.diarize)
            minutes: Minutes | None = None
            error: str | None = None
            def report(seconds: float, duration: float, job: Job = job) -> None:
                self._progress(job, seconds, duration)

            try:
                minutes = self._runner(job, report)
            except AudioFormatError as e:
                error = f"the upload is not audio or video FFmpeg can read: {e}"
            except GreffierError as e:
                error = str(e)
            except Exception as e:  # noqa: BLE001 - a job must end, whatever happened
                logger.exception("job %s crashed", job.id)
                error = f"internal error ({type(e).__name__}); see the service log"
            with self._cond:
                self._finish(job, minutes=minutes, error=error)

    def _progress(self, job: Job, seconds: float, duration: float) -> None:
        with self._cond:
            job.progress_s = max(job.progress_s, seconds)
            job.duration_s = duration

    def _finish(self, job: Job, *, minutes: Minutes | None = None, error: str | None = None) -> (
        None
    ):
        """Record the outcome (lock held) and remove the upload."""
        job.finished_at = time.time()
        job.minutes = minutes
        job.error = error
        job.status = FAILED if error is not None or minutes is None else DONE
        if job.status == DONE and minutes is not None:
            job.duration_s = job.duration_s or minutes.duration_s
        shutil.rmtree(job.path.parent, ignore_errors=True)
        elapsed = job.finished_at - (job.started_at or job.created_at)
        logger.info("job %s %s after %.1f s", job.id, job.status, elapsed)
        finished = [k for k, j in self._jobs.items() if j.status in (DONE, FAILED)]
        for old in finished[: max(0, len(finished) - self._max_kept)]:
            del self._jobs[old]


class SharedModels:
    """The models of this process, loaded on first use and kept (one per settings)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decoders: dict[str, WhisperDecoder] = {}
        self._diarizers: dict[str, PyannoteDiarizer] = {}

    def decoder(self, settings: Settings) -> WhisperDecoder:
        from greffier.batch import load_decoder

        key = f"{settings.cache_dir}|{settings.asr.model_dump_json()}"
        with self._lock:
            if key not in self._decoders:
                self._decoders[key] = load_decoder(settings)
            return self._decoders[key]

    def diarizer(self, settings: Settings) -> PyannoteDiarizer:
        from greffier.batch import load_diarizer

        key = settings.diarization.model_dump_json()
        with self._lock:
            if key not in self._diarizers:
                self._diarizers[key] = load_diarizer(settings)
            return self._diarizers[key]


MODELS = SharedModels()
"""The process's models, shared by every app instance."""


def transcription_runner(settings: Settings, models: SharedModels = MODELS) -> Runner:
    """A runner transcribing with :func:`greffier.batch.transcribe_audio` (the upload is
    decoded first, so a file that is no audio fails before any model loads)."""

    def run(job: Job, report: Callable[[float, float], None]) -> Minutes:
        from greffier.batch import recording_start, transcribe_audio

        audio, info = read_audio_with_info(job.path)
        report(0.0, info.duration)
        decoder = models.decoder(settings)
        diarizer = models.diarizer(settings) if job.diarize else None
        name = Path(job.filename).stem or "recording"
        return transcribe_audio(
            audio, settings, name=name, diarize=job.diarize, language=job.language,
            decoder=decoder, diarizer=diarizer,
            progress=lambda s: report(s, info.duration),
            started_at=recording_start(job.path, info.duration),
        )

    return run
