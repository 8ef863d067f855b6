"""Data-set readers: each layout built as a small tree of tiny WAVs."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from greffier.core.types import SpeakerTurn
from greffier.evaluation.datasets import (
    DatasetError,
    detect_layout,
    load_dataset,
    read_ami,
    read_common_voice,
    read_librispeech,
    read_manifest,
    read_mls,
    write_manifest,
)

pytestmark = pytest.mark.unit


def tiny_wav(path: Path, seconds: float = 0.1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * int(16000 * seconds))
    return path


def librispeech(root: Path) -> Path:
    chapter = root / "test-clean" / "121" / "123852"
    tiny_wav(chapter / "121-123852-0000.wav")
    tiny_wav(chapter / "121-123852-0001.wav")
    (chapter / "121-123852.trans.txt").write_text(
        "121-123852-0000 THOSE PRETTY WRONGS THAT LIBERTY COMMITS\n"
        "121-123852-0001 WHEN I AM SOMETIME ABSENT FROM THY HEART\n")
    return root


def test_librispeech_folder(tmp_path: Path) -> None:
    items = read_librispeech(librispeech(tmp_path / "LibriSpeech"))
    assert [u.id for u in items] == ["121-123852-0000", "121-123852-0001"]
    assert items[0].reference == "THOSE PRETTY WRONGS THAT LIBERTY COMMITS"
    assert items[0].audio_path.name == "121-123852-0000.wav" and items[0].audio_path.is_file()
    assert items[0].language == "en" and items[0].speakers == ("121",)
    assert detect_layout(tmp_path / "LibriSpeech") == "librispeech"


def test_librispeech_line_without_audio_is_an_error(tmp_path: Path) -> None:
    root = librispeech(tmp_path)
    (root / "test-clean" / "121" / "123852" / "121-123852-0001.wav").unlink()
    with pytest.raises(DatasetError, match="trans.txt:2"):
        read_librispeech(root)


def test_common_voice_tsv(tmp_path: Path) -> None:
    tiny_wav(tmp_path / "clips" / "common_voice_fr_1.wav")
    tiny_wav(tmp_path / "clips" / "common_voice_fr_2.wav")
    tsv = tmp_path / "test.tsv"
    tsv.write_text(
        "client_id\tpath\tsentence\tup_votes\tlocale\n"
        "abc\tcommon_voice_fr_1.wav\tL'homme \"sage\" parle.\t2\tfr\n"
        "def\tcommon_voice_fr_2.wav\tBonjour à tous.\t3\tfr\n")
    items = read_common_voice(tsv)
    assert [u.id for u in items] == ["common_voice_fr_1", "common_voice_fr_2"]
    assert items[0].reference == "L'homme \"sage\" parle."  # quotes are text, not CSV quoting
    assert items[0].language == "fr" and items[0].speakers == ("abc",)
    assert items[1].audio_path == tmp_path / "clips" / "common_voice_fr_2.wav"
    assert detect_layout(tsv) == "common_voice" and detect_layout(tmp_path) == "common_voice"
    assert [u.id for u in load_dataset(tmp_path, language="fr-CA")] == [u.id for u in items]
    assert load_dataset(tsv, language="fr-CA")[0].language == "fr-CA"


def test_mls_split(tmp_path: Path) -> None:
    split = tmp_path / "mls_french" / "test"
    tiny_wav(split / "audio" / "1234" / "567" / "1234_567_000001.wav")
    (split / "transcripts.txt").write_text("1234_567_000001\til était une fois\n")
    items = read_mls(split)
    assert len(items) == 1
    u = items[0]
    assert (u.id, u.language, u.reference, u.speakers) == (
        "1234_567_000001", "fr", "il était une fois", ("1234",))
    assert detect_layout(split) == "mls" and detect_layout(split / "transcripts.txt") == "mls"
    (split / "transcripts.txt").write_text("1234_567_000001 no tab here\n")
    with pytest.raises(DatasetError, match="transcripts.txt:1"):
        read_mls(split)


def test_ami_folder_with_rttm_uem_and_transcript(tmp_path: Path) -> None:
    tiny_wav(tmp_path / "amicorpus" / "ES2004a" / "audio" / "ES2004a.Array1-01.wav")
    tiny_wav(tmp_path / "amicorpus" / "ES2004a" / "audio" / "ES2004a.Mix-Headset.wav")
    tiny_wav(tmp_path / "amicorpus" / "IS1009a" / "audio" / "IS1009a.Mix-Headset.wav")
    (tmp_path / "rttms").mkdir()
    (tmp_path / "rttms" / "test.rttm").write_text(
        "SPEAKER ES2004a 1 0.50 2.00 <NA> <NA> MEE013 <NA> <NA>\n"
        "SPEAKER ES2004a 1 3.00 1.00 <NA> <NA> FEE016 <NA> <NA>\n"
        "SPEAKER IS1009a 1 1.00 4.00 <NA> <NA> FIE081 <NA> <NA>\n")
    (tmp_path / "uems").mkdir()
    (tmp_path / "uems" / "ES2004a.uem").write_text("ES2004a 1 0.00 5.00\n")
    (tmp_path / "ES2004a.txt").write_text("okay so let us start\n")
    items = {u.id: u for u in read_ami(tmp_path)}
    assert set(items) == {"ES2004a", "IS1009a"}
    es = items["ES2004a"]
    assert es.audio_path.name == "ES2004a.Mix-Headset.wav"
    assert es.speakers == ("FEE016", "MEE013") and es.num_speakers == 2
    assert es.uem == (0.0, 5.0) and es.reference == "okay so let us start"
    assert es.reference_turns() == [SpeakerTurn(0.5, 2.5, "MEE013"),
                                    SpeakerTurn(3.0, 4.0, "FEE016")]
    assert items["IS1009a"].reference is None and items["IS1009a"].uem is None
    assert items["IS1009a"].reference_turns() == [SpeakerTurn(1.0, 5.0, "FIE081")]
    assert detect_layout(tmp_path) == "ami"


def test_ami_recording_without_audio(tmp_path: Path) -> None:
    (tmp_path / "x.rttm").write_text("SPEAKER meeting1 1 0.0 1.0 <NA> <NA> A <NA> <NA>\n")
    with pytest.raises(DatasetError, match="meeting1"):
        read_ami(tmp_path)


def manifest(root: Path) -> Path:
    tiny_wav(root / "audio" / "a.wav")
    tiny_wav(root / "audio" / "m.wav")
    (root / "ref").mkdir()
    (root / "ref" / "a.txt").write_text("Hello there.\n")
    (root / "ref" / "m.rttm").write_text("SPEAKER m 1 0.0 1.5 <NA> <NA> S1 <NA> <NA>\n")
    (root / "manifest.tsv").write_text(
        "id\taudio\treference\tkind\tlanguage\tspeakers\tduration_s\n"
        "a\taudio/a.wav\tref/a.txt\ttranscript\ten\t1\t0.10\n"
        "m\taudio/m.wav\tref/m.rttm\trttm (uem 0-30 s)\ten\t2\t30.00\n")
    return root / "manifest.tsv"


def test_greffier_manifest(tmp_path: Path) -> None:
    items = read_manifest(manifest(tmp_path))
    a, m = items
    assert (a.id, a.reference, a.language, a.num_speakers, a.duration_s) == (
        "a", "Hello there.", "en", 1, 0.1)
    assert m.reference is None and m.uem == (0.0, 30.0) and m.num_speakers == 2
    assert m.reference_turns() == [SpeakerTurn(0.0, 1.5, "S1")]
    assert [u.id for u in read_manifest(tmp_path / "manifest.tsv", kinds=("transcript",))] == ["a"]
    assert detect_layout(tmp_path) == "manifest"
    assert [u.id for u in load_dataset("shared", shared_root=tmp_path)] == ["a", "m"]


def test_write_manifest_round_trip(tmp_path: Path) -> None:
    items = read_librispeech(librispeech(tmp_path / "ls"))
    out = write_manifest([*items, *read_manifest(manifest(tmp_path / "m"))],
                         tmp_path / "out" / "manifest.tsv")
    back = read_manifest(out)
    assert [u.id for u in back] == ["121-123852-0000", "121-123852-0001", "a", "m"]
    assert back[0].reference == items[0].reference
    assert back[0].audio_path == items[0].audio_path.resolve()
    assert back[3].uem == (0.0, 30.0)
    assert back[3].reference_turns() == [SpeakerTurn(0.0, 1.5, "S1")]


def test_unknown_layouts(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="hard set"):
        load_dataset("hard")
