"""Streaming Silero VAD (the ONNX model shipped inside faster-whisper's wheel).

One ONNX session per process, shared by every stream; each stream keeps its own recurrent
state. The session runs on the CPU with one thread.
"""

from __future__ import annotations

import functools
import importlib.resources
import threading
from pathlib import Path
from typing import Any

import numpy as np

from greffier.core.audio import FloatArray
from greffier.core.errors import MissingDependencyError, ModelNotFoundError

WINDOW = 512
"""Samples per VAD decision at 16 kHz (32 ms)."""
WINDOW_S = WINDOW / 16_000
_CONTEXT = 64


def _model_path() -> Path:
    try:
        assets = importlib.resources.files("faster_whisper") / "assets"
    except ModuleNotFoundError as e:
        raise MissingDependencyError.for_extra("faster_whisper", "asr") from e
    for name in ("silero_vad_v6.onnx", "silero_vad_v5.onnx", "silero_vad.onnx"):
        candidate = assets / name
        if candidate.is_file():
            return Path(str(candidate))
    raise ModelNotFoundError(
        "no Silero VAD model in faster-whisper's assets",
        hint="reinstall faster-whisper==1.2.1",
    )


class SileroVad:
    """The shared VAD model. Create streams with :meth:`stream`."""

    def __init__(self, session: Any) -> None:
        self._session = session

    @classmethod
    @functools.cache
    def shared(cls) -> SileroVad:
        """The process-wide instance (loads in ~0.1 s)."""
        try:
            import onnxruntime
        except ImportError as e:
            raise MissingDependencyError.for_extra("onnxruntime", "asr") from e
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 4
        session = onnxruntime.InferenceSession(
            str(_model_path()), providers=["CPUExecutionProvider"], sess_options=opts
        )
        return cls(session)

    def stream(self) -> VadStream:
        """A new stream with fresh state."""
        return VadStream(self._session)


class VadStream:
    """Speech probabilities for consecutive 32 ms windows of one audio stream."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._lock = threading.Lock()

    def reset_state(self) -> None:
        """Forget the recurrent state (not the audio context): the model's state can drift
        into one where it scores speech near 0 (after a change of recording conditions); a
        fresh state hears it again."""
        with self._lock:
            self._h = np.zeros_like(self._h)
            self._c = np.zeros_like(self._c)

    def process(self, samples: FloatArray) -> FloatArray:
        """Probabilities of the complete windows now available (blocking, ~2 ms per second)."""
        with self._lock:
            data = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32)])
            n = data.size // WINDOW
            self._pending = data[n * WINDOW :]
            if n == 0:
                return np.zeros(0, dtype=np.float32)
            windows = data[: n * WINDOW].reshape(n, WINDOW)
            contexts = np.vstack([self._context[None, :], windows[:-1, -_CONTEXT:]])
            batch = np.concatenate([contexts, windows], axis=1)
            self._context = windows[-1, -_CONTEXT:].copy()
            out, self._h, self._c = self._session.run(
                None, {"input": batch, "h": self._h, "c": self._c}
            )
            return np.asarray(out, dtype=np.float32).reshape(-1)
