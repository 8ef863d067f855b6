"""``greffier worker``: a livekit-agents worker with explicit dispatch, one captioner per room.

Jobs run as threads of one process (``JobExecutorType.THREAD``) so that a single Whisper model
and inference engine serve every room the worker holds; scale out by starting more workers.
A dispatch to a room that already has a greffier captioner is refused. Should a second
captioner (an agent participant with our agent-name attribute) appear anyway, at any time, the
one with the larger identity leaves, its last finals stored: checked at join, on that
participant's connection or attribute change, and every ``TIE_BREAK_POLL_S`` through the
server API (hidden agents raise no room event).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import uuid
from typing import Any

from greffier.agents.load import current_load, default_capacity, reported_load
from greffier.agents.meeting import MeetingRecorder, shared_store
from greffier.agents.session import MeetingSession, worker_stopping
from greffier.agents.shared_mic import shared_diarizer
from greffier.agents.takeover import (
    REPLACES_KEY,
    Takeover,
    replaced_identities,
    replaces_attribute,
)
from greffier.asr.engine import InferenceEngine, engine_for
from greffier.asr.streaming import StreamingOptions
from greffier.asr.whisper import WhisperDecoder
from greffier.core import metrics
from greffier.core.config import Settings
from greffier.core.errors import (
    ConfigurationError,
    MissingDependencyError,
    ServerUnreachableError,
)
from greffier.core.log import error_summary, get_logger, spawn
from greffier.core.priority import lower_thread_priority
from greffier.livekit.server import wait_healthy
from greffier.models.manager import ENGINE, MODELS, engine_key, whisper_key
from greffier.subtitles.protocol import (
    AGENT_NAME_ATTRIBUTE,
    AGENT_ROLE,
    AGENT_ROLE_ATTRIBUTE,
    READY_LINE,
)

logger = get_logger("agents.worker")

TIE_BREAK_POLL_S = 5.0
_AGENT_KIND = 4
"""``PARTICIPANT_KIND_AGENT`` (the same value in ``rtc.ParticipantKind`` and
``api.ParticipantInfo.Kind``): only an agent, never a person setting attributes, counts."""

_active_rooms: set[str] = set()
_rooms_lock = threading.Lock()


def shared_engine(settings: Settings) -> InferenceEngine:
    """The process's engine and its Whisper model (:data:`~greffier.models.manager.MODELS`;
    loaded on first use, blocking)."""
    asr, cache_dir = settings.asr, settings.cache_dir
    decoder = MODELS.get(whisper_key(asr, cache_dir), lambda: WhisperDecoder.load(asr, cache_dir))
    return MODELS.get(
        engine_key(whisper_key(asr, cache_dir), asr.max_batch_size),
        lambda: engine_for(decoder, asr.max_batch_size),
    )


def _is_captioner(p: Any, agent_name: str) -> bool:
    """An agent participant (room event or server API) captioning for ``agent_name``."""
    attrs = dict(p.attributes)
    return (
        int(p.kind) == _AGENT_KIND
        and attrs.get(AGENT_ROLE_ATTRIBUTE) == AGENT_ROLE
        and (attrs.get(AGENT_NAME_ATTRIBUTE) == agent_name)
    )


def outranked(me: str, others: list[str]) -> bool:
    """Whether a captioner must leave the room: another one has a smaller identity."""
    return any(other < me for other in others if other != me)


def build_server(settings: Settings) -> Any:
    """The AgentServer with greffier's request handler and entrypoint registered."""
    os.environ.setdefault("LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE", "0")
    from livekit import api
    from livekit.agents import (
        AgentServer,
        AutoSubscribe,
        JobContext,
        JobExecutorType,
        JobRequest,
        WorkerPermissions,
    )

    from greffier.agents.captioner import RoomCaptioner  # imports livekit

    lk = settings.livekit
    agent_name = settings.agent.name
    server = AgentServer(
        job_executor_type=JobExecutorType.THREAD,
        ws_url=lk.url,
        api_key=lk.api_key,
        api_secret=lk.api_secret.get_secret_value(),
        permissions=WorkerPermissions(
            can_publish=False,
            can_subscribe=True,
            can_publish_data=True,
            can_update_metadata=True,
            hidden=settings.agent.hidden,
        ),
        num_idle_processes=1,
        # Load from the engine (greffier.agents.load); the server prefers the least loaded
        # worker and sends nothing to one at the threshold.
        load_threshold=settings.agent.load_threshold,
        load_fnc=lambda: _load(settings),
        port=0,
        max_retry=3,
        log_level=settings.log_level,
    )

    async def captioners_in(room: str) -> list[Any]:
        client = api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret.get_secret_value())
        try:
            resp = await client.room.list_participants(api.ListParticipantsRequest(room=room))
            return [p for p in resp.participants if _is_captioner(p, agent_name)]
        finally:
            await client.aclose()

    async def on_request(req: JobRequest) -> None:
        room = req.room.name
        # A dispatch of an orphaned room names the dead captioners still listed (takeover).
        replaced = replaced_identities(req.job.metadata)
        with _rooms_lock:
            busy_here = room in _active_rooms
        busy = busy_here or any(p.identity not in replaced for p in await captioners_in(room))
        if busy:
            logger.info("job %s refused: the room already has a captioner", req.id)
            await req.reject()
            return
        with _rooms_lock:
            _active_rooms.add(room)
        await req.accept(
            identity=f"{settings.agent.identity_prefix}{uuid.uuid4().hex[:8]}",
            name="Greffier",
            attributes={
                AGENT_ROLE_ATTRIBUTE: AGENT_ROLE,
                AGENT_NAME_ATTRIBUTE: agent_name,
                **({REPLACES_KEY: replaces_attribute(replaced)} if replaced else {}),
            },
        )

    async def entrypoint(ctx: JobContext) -> None:
        room_name = ctx.job.room.name
        with _rooms_lock:
            _active_rooms.add(room_name)
        ctx.add_shutdown_callback(lambda: _release(room_name))
        await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
        me = ctx.room.local_participant.identity
        replaced = replaced_identities(ctx.job.metadata)
        leaving = False

        def leave_if_outranked(others: list[Any]) -> bool:
            # Two captioners in one room: the one with the smaller identity stays; a captioner
            # sent to replace this one (declared dead: no heartbeat, see takeover) always
            # does, and the dead ones this job replaces do not count.
            nonlocal leaving
            if not leaving and any(
                p.identity != me
                and (
                    me in replaced_identities(dict(p.attributes).get(REPLACES_KEY))
                    or (p.identity not in replaced and outranked(me, [p.identity]))
                )
                for p in others
            ):
                leaving = True
                logger.info("job %s leaves: another captioner holds the room", ctx.job.id)
                ctx.shutdown("another captioner holds the room")
            return leaving

        if leave_if_outranked(await captioners_in(room_name)):
            return

        def on_participant(p: Any) -> None:
            if _is_captioner(p, agent_name):
                leave_if_outranked([p])

        ctx.room.on("participant_connected", on_participant)
        ctx.room.on("participant_attributes_changed", lambda _, p: on_participant(p))

        async def watch() -> None:
            while not leaving:
                await asyncio.sleep(TIE_BREAK_POLL_S)
                try:
                    others = await captioners_in(room_name)
                except Exception as e:  # noqa: BLE001 - checked again at the next poll
                    logger.warning(
                        "job %s: listing the room's captioners failed (%s)",
                        ctx.job.id,
                        type(e).__name__,
                    )
                    continue
                leave_if_outranked(others)

        watcher = spawn(watch(), name=f"greffier-tie-break-{ctx.job.id}", logger=logger)

        async def stop_watching() -> None:
            watcher.cancel()

        ctx.add_shutdown_callback(stop_watching)
        engine = shared_engine(settings)
        options = StreamingOptions.from_settings(settings.asr, settings.vad)
        recorder = await MeetingRecorder.open(settings, room_name)
        if leaving:
            await recorder.aclose()
            return
        session = MeetingSession(ctx, recorder, settings)
        captioner = RoomCaptioner(
            ctx.room,
            engine,
            options,
            meeting_start=recorder.meeting.started_at,
            on_final=recorder.on_final,
            on_closed=recorder.flush,
            on_humans_changed=session.humans_changed,
            diarization=settings.diarization,
            recordings=settings.data_dir / "recordings" / recorder.meeting.id,
        )
        session.captioner = captioner
        captioner.start()
        ctx.room.on("data_received", session.on_data)

        async def close_room() -> None:
            # One callback (livekit-agents runs callbacks concurrently): the session's last
            # finals first, then the recorder stores them.
            try:
                await session.aclose()
            finally:
                await recorder.aclose()

        ctx.add_shutdown_callback(close_room)
        session.humans_changed(captioner.humans())
        logger.info("job %s captions its room (meeting %s)", ctx.job.id, recorder.meeting.id)

    server.rtc_session(entrypoint, agent_name=agent_name, on_request=on_request)

    @server.on("worker_registered")
    def _registered(*_: Any) -> None:
        # Printed for whoever supervises the process (see greffier.livekit.worker_process).
        print(f"{READY_LINE} as agent {agent_name!r}", file=sys.stderr, flush=True)

    return server


def _load(settings: Settings) -> float:
    with _rooms_lock:
        active = len(_active_rooms)
    metrics.set_rooms(active)
    engines = MODELS.loaded(ENGINE)
    device = getattr(engines[0].decoder, "device", None) if engines else None
    capacity = settings.agent.capacity_streams or default_capacity(getattr(device, "device", "cpu"))
    load = current_load(capacity, active, settings.agent.max_rooms)
    return reported_load(load, settings.agent.load_threshold)


def serve_metrics(settings: Settings) -> None:
    """Start the Prometheus endpoint (``metrics_port``; 0 is off) on its own thread."""
    port, host = settings.agent.metrics_port, settings.agent.metrics_host
    if not port:
        return
    try:
        metrics.serve(port, host)
    except OSError as e:
        raise ConfigurationError(
            f"the metrics endpoint cannot listen on {host}:{port} ({e.strerror})",
            hint="set GREFFIER_AGENT__METRICS_PORT to a free port (each worker of a machine "
            "needs its own), or to 0 to turn the endpoint off",
        ) from e
    except ImportError as e:
        raise MissingDependencyError.for_extra("prometheus_client", "agent") from e
    logger.info("metrics on http://%s:%d/metrics", host, port)


def takeover(settings: Settings) -> Takeover:
    """This worker's heartbeat for its rooms and sweep for rooms whose captioner died."""
    lk = settings.livekit

    def held_rooms() -> list[str]:
        with _rooms_lock:
            return sorted(_active_rooms)

    return Takeover(
        lambda: shared_store(settings.store_url),
        held_rooms=held_rooms,
        lk_url=lk.http_url,
        api_key=lk.api_key,
        api_secret=lk.api_secret.get_secret_value(),
        agent_name=settings.agent.name,
        stale_after_s=settings.agent.linger_s + settings.agent.stale_margin_s,
    )


async def _release(room: str) -> None:
    with _rooms_lock:
        _active_rooms.discard(room)


def _preload_diarizer(settings: Settings) -> None:
    """Load the shared microphones' pipeline now (it is loaded on first use otherwise), at a
    lower priority than captions (``core.priority``)."""
    lower_thread_priority()
    try:
        shared_diarizer(settings.diarization)
    except Exception as e:  # noqa: BLE001 - loaded again on first use, where failures show
        logger.warning(
            "diarization pipeline not preloaded (%s): shared microphones load it on first use",
            error_summary(e),
        )


def run_worker(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM. Returns the process exit code."""
    lk = settings.livekit
    if not wait_healthy(lk.http_url, settings.agent.connect_timeout_s):
        raise ServerUnreachableError(
            f"no LiveKit server answers at {lk.url} "
            f"(waited {settings.agent.connect_timeout_s:.0f} s)",
            hint="start one with `greffier livekit-server start` or set GREFFIER_LIVEKIT__URL",
        )
    shared_engine(settings)  # load the model before taking jobs
    if settings.diarization.preload:
        threading.Thread(
            target=_preload_diarizer,
            args=(settings,),
            name="greffier-diarizer-preload",
            daemon=True,
        ).start()
    serve_metrics(settings)
    server = build_server(settings)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        run = spawn(server.run(devmode=False), name="greffier-worker", logger=logger)
        sweeper = spawn(takeover(settings).run(), name="greffier-takeover", logger=logger)
        waiter = spawn(stop.wait(), name="greffier-stop-signal", logger=logger)
        done, _ = await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            logger.info("stopping the worker")
            worker_stopping.set()  # its meetings stay live (see MeetingSession.aclose)
            await server.aclose()
        await asyncio.gather(run, return_exceptions=True)
        sweeper.cancel()
        waiter.cancel()
        if run.done() and not run.cancelled() and run.exception() is not None:
            raise ServerUnreachableError(f"the worker lost the LiveKit server: {run.exception()}")

    asyncio.run(main())
    return 0
