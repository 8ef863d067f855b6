"""Batch transcription jobs: one worker thread runs them one at a time, in order, from a
bounded queue; Whisper (and pyannote, when asked) are loaded once per process and shared
(``greffier.models.manager``).

Jobs of ``POST /api/transcriptions`` and their minutes live in the store
(``greffier.store.jobs``): once the queue is opened on it (:meth:`JobQueue.open`, at start-up),
jobs a restart interrupted are queued again (or failed with the reason when their upload is
gone or they were already interrupted once) and uploads no job owns are removed. Jobs of
``POST /v1/audio/transcriptions`` are answered in the request and never stored. A job fails
when it runs past ``job_timeout_s`` (checked whenever the runner reports progress).
"""

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

from greffier.core.audio import AudioTooLongError, read_audio_bounded
from greffier.core.config import Settings
from greffier.core.errors import AudioFormatError, GreffierError, StoreError
from greffier.core.log import get_logger
from greffier.store.jobs import (
    DONE,
    FAILED,
    JOB_FIELDS,
    QUEUED,
    RUNNING,
    UNFINISHED,
    JobRecord,
    JobStatus,
    JobStore,
)
from greffier.subtitles.minutes import Minutes

logger = get_logger("service.jobs")

MAX_ATTEMPTS = 2
"""Starts a job gets: one interrupted by a restart runs again once, not forever (a file that
kills the process must not kill it at every start)."""

# Why a job failed, for callers that map it to a status (``error_code``).
UNDECODABLE, TOO_LONG, TIMED_OUT, INTERRUPTED, INTERNAL = (
    "undecodable",
    "too_long",
    "timeout",
    "interrupted",
    "internal",
)


class QueueFullError(GreffierError):
    """The transcription queue holds as many jobs as it may."""


class JobTimeoutError(GreffierError):
    """A job ran longer than ``job_timeout_s``, or its caller gave up on it."""


@dataclass
class Job:
    """One transcription request and what became of it (the service's own bookkeeping)."""

    id: str
    filename: str
    """The name the client gave the upload (untrusted: never logged)."""
    path: Path
    """Where the upload is kept until the job ends."""
    diarize: bool
    language: str
    created_at: float
    model: str = ""
    """The Whisper model to use; empty for ``asr.model``."""
    stored: bool = True
    """Kept in the store (False: answered in the request, as ``/v1/audio/transcriptions``)."""
    status: JobStatus = QUEUED
    started_at: float | None = None
    finished_at: float | None = None
    progress_s: float = 0.0
    duration_s: float | None = None
    error: str | None = None
    error_code: str | None = None
    attempts: int = 0
    minutes: Minutes | None = None

    def record(self) -> JobRecord:
        """The job as stored (every field of :class:`JobRecord`; ``path`` as ``upload``)."""
        shared = {name: getattr(self, name) for name in _SHARED_FIELDS}
        return JobRecord(upload=str(self.path), **shared)

    @classmethod
    def of(cls, r: JobRecord) -> Job:
        """The job a stored record describes."""
        return cls(path=Path(r.upload), **{name: getattr(r, name) for name in _SHARED_FIELDS})


_SHARED_FIELDS = tuple(name for name in JOB_FIELDS if name != "upload")
"""Fields a :class:`Job` and its :class:`JobRecord` share by name."""


Runner = Callable[[Job, Callable[[float, float], None]], Minutes]
"""Transcribes a job's file (blocking), reporting the seconds of audio done and in all
(``report(0, 0)`` only checks in). ``report`` raises JobTimeoutError once the job is over
time: a runner calls it often and lets the error through."""

DoneCallback = Callable[[Job], None]


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


class UploadSlots:
    """A bound on uploads being received at once (taken before the body is read)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._taken = 0

    def try_take(self) -> bool:
        with self._lock:
            if self._taken >= self.limit:
                return False
            self._taken += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self._taken = max(0, self._taken - 1)

    @property
    def taken(self) -> int:
        return self._taken


class JobQueue:
    """Jobs by id, a bounded FIFO of waiting ones and a single worker thread (started with the
    first job). Finished jobs stay in memory, the oldest forgotten beyond ``max_kept`` (and
    in the store, once :meth:`open` gave it one, pruned likewise)."""

    def __init__(
        self,
        runner: Runner,
        *,
        max_queued: int,
        max_kept: int,
        timeout_s: float | None = None,
        max_uploads: int = 4,
    ) -> None:
        self._runner = runner
        self._max_queued = max_queued
        self._max_kept = max_kept
        self.timeout_s = timeout_s
        self.uploads = UploadSlots(max_uploads)
        self._cond = threading.Condition()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._pending: deque[str] = deque()
        self._callbacks: dict[str, DoneCallback] = {}
        self._cancelled: set[str] = set()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._store: JobStore | None = None
        self._opened = False
        self._open_lock = threading.Lock()
        self._since = time.time()

    # -- the store ---------------------------------------------------------------------

    def configure(self, *, timeout_s: float | None, max_uploads: int) -> None:
        """Set the per-job timeout and the bound on uploads in flight (from settings)."""
        self.timeout_s = timeout_s
        self.uploads.limit = max_uploads

    def open(self, store: Callable[[], JobStore], upload_dir: Path) -> None:
        """Use the store ``store()`` opens (once; blocking): interrupted jobs are queued again
        or failed, uploads no job owns are removed (those older than this queue: newer ones
        belong to requests of this process). Raises StoreError when it cannot open (the next
        call tries again)."""
        with self._open_lock:
            if self._opened:
                return
            opened = store()
            try:
                self._recover(opened, upload_dir)
            except StoreError:
                opened.close()
                raise
            self._opened = True

    @property
    def opened(self) -> bool:
        return self._opened

    def _recover(self, store: JobStore, upload_dir: Path) -> None:
        now = time.time()
        requeued: list[Job] = []
        for record in store.unfinished():
            job = Job.of(record)
            why = None
            if not job.path.is_file():
                why = "its upload was lost when the service restarted; upload it again"
            elif job.status == RUNNING and job.attempts >= MAX_ATTEMPTS:
                why = (
                    f"the service stopped {job.attempts} times while transcribing it; "
                    "it is not tried again (check the file, or split it)"
                )
            if why is None:
                job.status, job.started_at, job.progress_s = QUEUED, None, 0.0
                requeued.append(job)
                store.put(job.record())
                continue
            job.status, job.finished_at, job.error, job.error_code = (FAILED, now, why, INTERRUPTED)
            store.put(job.record())
            _remove_upload(job.path, upload_dir)
        with self._cond:
            self._store = store
            for job in requeued:
                self._jobs[job.id] = job
                self._pending.append(job.id)
            live = set(self._jobs)  # jobs submitted before the store opened own theirs
            if self._pending:
                self._start_worker()
            self._cond.notify_all()
        swept = _sweep(upload_dir, live, before=self._since)
        if requeued or swept:
            logger.info(
                "after the restart: %d job(s) queued again, %d orphaned upload(s) removed",
                len(requeued),
                swept,
            )

    def _save(self, job: Job) -> None:
        """Write a stored job (lock held); a store failure is logged, the job goes on in
        memory."""
        if self._store is None or not job.stored:
            return
        try:
            self._store.put(job.record())
        except StoreError as e:
            logger.warning("job %s: %s", job.id, e.message)

    # -- the queue -----------------------------------------------------------------------

    def submit(self, job: Job, on_done: DoneCallback | None = None) -> Job:
        """Queue ``job`` (``on_done`` receives a copy of it once it ends, on the worker
        thread); raises QueueFullError when ``max_queued`` jobs already wait."""
        with self._cond:
            if self._closed:
                raise QueueFullError("the service is shutting down", hint="retry in a moment")
            if len(self._pending) >= self._max_queued:
                raise QueueFullError(
                    f"{len(self._pending)} transcriptions are already waiting",
                    hint="retry once one has finished",
                )
            self._jobs[job.id] = job
            self._pending.append(job.id)
            if on_done is not None:
                self._callbacks[job.id] = on_done
            self._save(job)
            self._start_worker()
            self._cond.notify_all()
            return dataclasses.replace(job)

    def _start_worker(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name="greffier-transcriptions", daemon=True
            )
            self._thread.start()

    def get(self, job_id: str) -> tuple[Job, int | None] | None:
        """A copy of the job and its place in the queue (None once it runs), or None."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is not None:
                position = self._pending.index(job_id) if job.status == QUEUED else None
                return dataclasses.replace(job), position
            store = self._store
        if store is None:
            return None
        try:
            record = store.get(job_id)
        except StoreError as e:
            logger.warning("job %s: %s", job_id, e.message)
            return None
        if record is None or record.status in UNFINISHED:
            return None  # another process's job: not ours to report
        return Job.of(record), None

    def cancel(self, job_id: str) -> None:
        """Give up on a job: dropped if it waits, stopped at its next progress report if it
        runs (the caller went away)."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or job.status in (DONE, FAILED):
                return
            if job.status == QUEUED:
                self._pending.remove(job_id)
                self._finish(job, error="the request was cancelled", code=INTERRUPTED)
            else:
                self._cancelled.add(job_id)

    def close(self, timeout_s: float = 1.0) -> None:
        """Stop taking jobs. Waiting jobs stay queued in the store (the next start runs
        them; unstored ones fail). A running transcription cannot be interrupted: its thread
        (a daemon) is waited for ``timeout_s`` at most."""
        with self._cond:
            self._closed = True
            while self._pending:
                job = self._jobs[self._pending.popleft()]
                if job.stored and self._store is not None:
                    continue
                self._finish(job, error="the service stopped before this job ran", code=INTERRUPTED)
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        with self._cond:
            store, self._store = self._store, None
        if store is not None and (thread is None or not thread.is_alive()):
            store.close()

    # -- worker --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._jobs[self._pending.popleft()]
                job.status = RUNNING
                job.started_at = time.time()
                job.attempts += 1
                self._save(job)
            logger.info("job %s started (diarize=%s)", job.id, job.diarize)
            minutes: Minutes | None = None
            error: str | None = None
            code: str | None = None
            deadline = job.started_at + self.timeout_s if self.timeout_s else None

            def report(
                seconds: float, duration: float, job: Job = job, deadline: float | None = deadline
            ) -> None:
                self._progress(job, seconds, duration, deadline)

            try:
                minutes = self._runner(job, report)
            except AudioTooLongError as e:
                error, code = str(e), TOO_LONG
            except AudioFormatError as e:
                error, code = f"the upload is not audio or video FFmpeg can read: {e}", UNDECODABLE
            except JobTimeoutError as e:
                error, code = str(e), TIMED_OUT
            except GreffierError as e:
                error, code = str(e), INTERNAL
            except Exception as e:  # noqa: BLE001 - a job must end, whatever happened
                logger.exception("job %s crashed", job.id)
                error, code = f"internal error ({type(e).__name__}); see the service log", INTERNAL
            with self._cond:
                self._finish(job, minutes=minutes, error=error, code=code)

    def _progress(self, job: Job, seconds: float, duration: float, deadline: float | None) -> None:
        with self._cond:
            job.progress_s = max(job.progress_s, seconds)
            if duration > 0:
                job.duration_s = duration
            cancelled = job.id in self._cancelled
        if cancelled:
            raise JobTimeoutError("the request was cancelled")
        if deadline is not None and time.time() > deadline:
            raise JobTimeoutError(
                f"the transcription took longer than {self.timeout_s:g} s",
                hint="GREFFIER_SERVICE__JOB_TIMEOUT_S sets the limit",
            )

    def _finish(
        self,
        job: Job,
        *,
        minutes: Minutes | None = None,
        error: str | None = None,
        code: str | None = None,
    ) -> None:
        """Record the outcome (lock held), remove the upload, call back."""
        job.finished_at = time.time()
        job.minutes = minutes
        job.error = error
        job.error_code = code if error is not None else None
        job.status = FAILED if error is not None or minutes is None else DONE
        if job.status == DONE and minutes is not None:
            job.duration_s = job.duration_s or minutes.duration_s
        shutil.rmtree(job.path.parent, ignore_errors=True)
        self._cancelled.discard(job.id)
        elapsed = job.finished_at - (job.started_at or job.created_at)
        logger.info("job %s %s after %.1f s", job.id, job.status, elapsed)
        self._save(job)
        callback = self._callbacks.pop(job.id, None)
        if not job.stored:
            del self._jobs[job.id]
        finished = [k for k, j in self._jobs.items() if j.status in (DONE, FAILED)]
        for old in finished[: max(0, len(finished) - self._max_kept)]:
            del self._jobs[old]
        if self._store is not None and job.stored:
            try:
                self._store.prune(self._max_kept)
            except StoreError as e:
                logger.warning("%s", e.message)
        if callback is not None:
            callback(dataclasses.replace(job))


def _remove_upload(path: Path, upload_dir: Path) -> None:
    """Remove a job's upload folder, only when it lies inside ``upload_dir``."""
    try:
        folder = path.parent.resolve()
        if folder.parent == upload_dir.resolve():
            shutil.rmtree(folder, ignore_errors=True)
    except OSError:
        pass


def _sweep(upload_dir: Path, keep: set[str], *, before: float) -> int:
    """Remove what ``upload_dir`` holds besides the folders of the jobs in ``keep`` and what
    was modified at ``before`` or later."""
    removed = 0
    try:
        entries = list(upload_dir.iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            recent = entry.lstat().st_mtime >= before
        except FileNotFoundError:
            continue
        if recent or (entry.name in keep and entry.is_dir()):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def transcription_runner(settings: Settings) -> Runner:
    """A runner transcribing with :func:`greffier.recordings.transcribe_audio`. The upload is
    decoded first, within ``service.max_duration_s`` (refused from its metadata when it says
    longer, stopped while decoding otherwise), so a file that is no audio, or too long, fails
    before any model loads."""

    def run(job: Job, report: Callable[[float, float], None]) -> Minutes:
        from greffier.recordings import (
            load_decoder,
            load_diarizer,
            recording_start,
            transcribe_audio,
        )

        audio, info = read_audio_bounded(
            job.path, settings.service.max_duration_s, check=lambda _: report(0.0, 0.0)
        )
        report(0.0, info.duration)
        wanted = settings
        if job.model and job.model != settings.asr.model:
            wanted = settings.model_copy(
                update={"asr": settings.asr.model_copy(update={"model": job.model})}
            )
        decoder = load_decoder(wanted)  # loaded once per process (models.manager)
        diarizer = load_diarizer(settings) if job.diarize else None
        report(0.0, 0.0)
        name = Path(job.filename).stem[:64] or "recording"
        return transcribe_audio(
            audio,
            wanted,
            name=name,
            diarize=job.diarize,
            language=job.language,
            decoder=decoder,
            diarizer=diarizer,
            progress=lambda s: report(s, info.duration),
            started_at=recording_start(job.path, info.duration),
        )

    return run
