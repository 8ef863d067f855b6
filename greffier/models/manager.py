"""The models of this process: each loaded once, on first use, and kept.

Whoever needs Whisper, the inference engine built on it, or the diarization pipeline asks
:data:`MODELS` with a :class:`ModelKey` (kind, name, device, precision and the options that
change the loaded object) and a loader (the adapter's own ``load``, which imports its heavy
library: nothing heavy is imported here). Loading is blocking and thread-safe: threads asking
for one key wait for a single load; different keys load side by side; a failed load is not
kept (the next call tries again). A device ``auto`` counts as the device it resolves to
(:mod:`greffier.models.device`, resolved once per process and logged), so settings that say
``auto`` and settings that name that device share one model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, cast

from greffier.core.config import AsrSettings, DiarizationSettings
from greffier.core.log import get_logger
from greffier.models.device import DeviceChoice, known_choice

logger = get_logger("models.manager")

T = TypeVar("T")

WHISPER, ENGINE, DIARIZATION = "whisper", "engine", "diarization"
"""The kinds of :class:`ModelKey`."""
_LIBRARY = {WHISPER: "ctranslate2", ENGINE: "ctranslate2", DIARIZATION: "torch"}
"""Which library's device resolution a kind follows."""


@dataclass(frozen=True, slots=True)
class ModelKey:
    """What identifies one loaded model."""

    kind: str
    name: str
    device: str
    compute_type: str
    options: tuple[tuple[str, str], ...] = ()
    """Other settings the loaded object depends on (thread count, cache, batch size)."""

    def on(self, choice: DeviceChoice) -> ModelKey:
        """The key with a concrete device and precision."""
        return replace(self, device=choice.device, compute_type=choice.compute_type)

    def canonical(self) -> ModelKey:
        """The key with ``auto`` replaced by what it resolves to, when that is known."""
        library = _LIBRARY.get(self.kind, self.kind)
        choice = known_choice(self.device, self.compute_type, library=library)
        return self if choice is None else self.on(choice)


def whisper_key(asr: AsrSettings, cache_dir: Path, *, cpu_threads: int | None = None) -> ModelKey:
    """The key of the Whisper model ``asr`` names (``cpu_threads`` overrides the setting)."""
    threads = asr.cpu_threads if cpu_threads is None else cpu_threads
    options = (("cache_dir", str(cache_dir)), ("cpu_threads", str(threads)))
    return ModelKey(WHISPER, asr.model, asr.device, asr.compute_type, options).canonical()


def engine_key(decoder: ModelKey, max_batch_size: int) -> ModelKey:
    """The key of the inference engine serving the Whisper model ``decoder``."""
    options = (*decoder.options, ("max_batch_size", str(max_batch_size)))
    return replace(decoder, kind=ENGINE, options=options).canonical()


def diarization_key(settings: DiarizationSettings) -> ModelKey:
    """The key of the diarization pipeline ``settings`` names."""
    return ModelKey(DIARIZATION, settings.pipeline, settings.device, "float32").canonical()


class ModelManager:
    """Loaded models by key (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[ModelKey, Any] = {}
        self._loading: dict[ModelKey, threading.Lock] = {}

    def get(self, key: ModelKey, load: Callable[[], T]) -> T:
        """The model of ``key``, calling ``load()`` the first time (blocking)."""
        key = key.canonical()
        with self._lock:
            if key in self._models:
                return cast(T, self._models[key])
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._models:  # loaded while this thread waited
                    return cast(T, self._models[key])
            started = time.perf_counter()
            model = load()
            choice = getattr(model, "device", None)
            with self._lock:
                self._models[key] = model
                if isinstance(choice, DeviceChoice):  # "auto" as what it became
                    self._models.setdefault(key.on(choice), model)
                self._loading.pop(key, None)
        logger.debug(
            "%s model %s kept (%s/%s, loaded in %.1f s)",
            key.kind,
            key.name,
            key.device,
            key.compute_type,
            time.perf_counter() - started,
        )
        return model

    def loaded(self, kind: str) -> list[Any]:
        """The models of one kind loaded so far (each once)."""
        with self._lock:
            found = [m for k, m in self._models.items() if k.kind == kind]
        return list({id(m): m for m in found}.values())


MODELS = ModelManager()
"""This process's models, shared by every room, job and request."""
