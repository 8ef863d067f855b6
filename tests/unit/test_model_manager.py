"""One model manager per process: a model is loaded once per key, whoever asks, from any
thread; ``auto`` devices share the model of the device they resolve to."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from greffier.core.config import AsrSettings, DiarizationSettings
from greffier.models.device import DeviceChoice, resolve_device
from greffier.models.manager import (
    ENGINE,
    ModelKey,
    ModelManager,
    diarization_key,
    engine_key,
    whisper_key,
)

pytestmark = pytest.mark.unit

KEY = ModelKey("whisper", "base", "cpu", "int8")


def test_threads_asking_at_once_load_a_model_once() -> None:
    manager = ModelManager()
    loads: list[int] = []
    start = threading.Barrier(8)
    got: list[object] = []

    def load() -> object:
        loads.append(1)
        return SimpleNamespace()

    def ask() -> None:
        start.wait(5)
        got.append(manager.get(KEY, load))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(loads) == 1 and len(got) == 8 and all(m is got[0] for m in got)


def test_different_models_load_side_by_side() -> None:
    manager = ModelManager()
    other_loading = threading.Event()
    seen: list[bool] = []

    def slow() -> str:
        seen.append(other_loading.wait(5))  # would deadlock if one lock served every key
        return "whisper"

    def other() -> str:
        other_loading.set()
        return "pyannote"

    t = threading.Thread(target=lambda: manager.get(KEY, slow))
    t.start()
    assert manager.get(ModelKey("diarization", "local", "cpu", "float32"), other) == "pyannote"
    t.join(5)
    assert seen == [True] and manager.get(KEY, lambda: "again") == "whisper"


def test_a_failed_load_is_not_kept() -> None:
    manager = ModelManager()

    def broken() -> object:
        raise OSError("disk gone")

    with pytest.raises(OSError):
        manager.get(KEY, broken)
    assert manager.get(KEY, lambda: "loaded") == "loaded"


def test_auto_shares_the_model_of_the_device_it_became() -> None:
    manager = ModelManager()
    model = SimpleNamespace(device=DeviceChoice("cpu", "int8"))
    auto = ModelKey("kind-for-this-test", "m", "auto", "auto")
    assert manager.get(auto, lambda: model) is model
    assert manager.get(ModelKey("kind-for-this-test", "m", "cpu", "auto"), lambda: "2nd") is model
    assert manager.get(ModelKey("kind-for-this-test", "m", "cpu", "int8"), lambda: "2nd") is model
    assert manager.loaded("kind-for-this-test") == [model]
    assert manager.get(ModelKey("kind-for-this-test", "m", "cpu", "int16"), lambda: "x") == "x"


def test_keys_name_what_changes_the_loaded_model(tmp_path: Path) -> None:
    resolve_device("auto", "auto", library="ctranslate2", cuda_available=lambda: False)
    auto = whisper_key(AsrSettings(model="base"), tmp_path)
    assert (auto.device, auto.compute_type) == ("cpu", "int8")
    assert auto == whisper_key(AsrSettings(model="base", device="cpu"), tmp_path)
    assert auto != whisper_key(AsrSettings(model="base"), tmp_path, cpu_threads=2)
    assert auto != whisper_key(AsrSettings(model="tiny.en"), tmp_path)
    assert auto != whisper_key(AsrSettings(model="base"), tmp_path / "other")
    engine = engine_key(auto, 4)
    assert engine.kind == ENGINE and engine != engine_key(auto, 1)
    # the diarization key ignores what only the live windows use
    assert diarization_key(DiarizationSettings(window_s=8.0, device="cpu")) == diarization_key(
        DiarizationSettings(device="cpu")
    )
