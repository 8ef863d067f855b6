from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.hardset import phone_band, quiet
from benchmarks.metrics import (
    CaptionEvent,
    TimedFinal,
    latency_by_length,
    length_bucket,
    median_of_runs,
    repeated_phrases,
    retracted_segments,
    utterance_final_latency,
)

pytestmark = pytest.mark.unit

JEAN_REF = ("Jean-Carlos Díaz a été blessé peu après le démarrage. La course a continué "
            "sans lui.")


def test_a_sentence_said_twice_with_the_second_copy_truncated_counts_once() -> None:
    # The French final of issue 8: the second copy stops mid-word.
    hyp = ("Jean-Carlos Díaz a été blessé peu après le démarrage. "
           "Jean-Carlos Díaz a été blessé peu après le démarr")
    phrases = repeated_phrases(JEAN_REF, hyp)
    assert phrases == ["jean carlos díaz a été blessé peu après le"]


def test_a_repeat_across_the_seam_of_two_finals_that_differs_by_a_word() -> None:
    ref = "the quick brown fox jumps over the lazy dog near the river bank today"
    finals = ["The quick brown fox jumps over the lazy dog", "the quick brown cat jumps "
              "over the lazy dog near the river bank today."]
    assert repeated_phrases(ref, " ".join(finals)) == ["jumps over the lazy dog"]


def test_a_copy_that_differs_by_one_word_inside_is_one_phrase() -> None:
    ref = "we will meet at the station at nine tomorrow morning and then go"
    hyp = ("we will meet at the station at nine tomorrow morning "
           "we will meet at a station at nine tomorrow morning and then go")
    assert repeated_phrases(ref, hyp) == ["we will meet at a station at nine tomorrow morning"]


def test_a_phrase_the_reference_says_twice_is_not_a_repeat() -> None:
    ref = "I said it once. I said it once again, and I said it once more."
    assert repeated_phrases(ref, ref) == []
    assert repeated_phrases("", "") == []


def test_a_hallucinated_loop_absent_from_the_reference_counts() -> None:
    hyp = "hello there thank you for watching thank you for watching"
    assert repeated_phrases("hello there", hyp) == ["thank you for watching"]


def test_short_repeats_below_the_phrase_length_are_ignored() -> None:
    # "ten of clubs" twice is three words: not a phrase by the default rule, one at n=3.
    assert repeated_phrases("ten of clubs", "ten of clubs ten of clubs") == []
    assert repeated_phrases("ten of clubs", "ten of clubs ten of clubs", n=3) == [
        "ten of clubs"]


def test_two_separate_repeats_are_two_phrases() -> None:
    ref = "alpha beta gamma delta one two three four five six seven eight nine ten"
    hyp = ("alpha beta gamma delta alpha beta gamma delta one two three four five six seven "
           "eight nine ten seven eight nine ten")
    assert repeated_phrases(ref, hyp) == ["alpha beta gamma delta", "seven eight nine ten"]


def test_retracted_segments_are_interims_followed_by_an_empty_final() -> None:
    events = [
        CaptionEvent("a", False, "Printing"),
        CaptionEvent("a", False, "Printing Printing in the only sense"),
        CaptionEvent("a", True, ""),          # shown, then gone: retracted
        CaptionEvent("b", False, "hello"),
        CaptionEvent("b", True, "hello world"),
        CaptionEvent("c", True, ""),          # nothing was shown: not retracted
        CaptionEvent("d", False, ""),
        CaptionEvent("d", True, ""),          # only empty interims: not retracted
        CaptionEvent("e", False, "left behind"),  # never finalised
    ]
    assert retracted_segments(events) == (["a"], ["e"])


def test_utterance_latency_is_the_first_final_reaching_its_end() -> None:
    finals = [TimedFinal(0.0, 4.0, 5.5), TimedFinal(4.1, 9.7, 10.9),
              TimedFinal(4.1, 12.0, 13.0)]
    # first utterance ends at 4.2: the first final (ends 4.0, within tolerance) covers it
    assert utterance_final_latency(finals, 0.0, 4.2) == pytest.approx(1.3)
    # second ends at 10.0: the final ending at 9.7 covers it (0.3 s short)
    assert utterance_final_latency(finals, 4.3, 10.0) == pytest.approx(0.9)
    # an utterance ending at 12.0: the third final, arriving 1.0 s later
    assert utterance_final_latency(finals, 10.2, 12.0) == pytest.approx(1.0)
    # a final whose words stop well short of the end still counts, from inside
    assert utterance_final_latency([TimedFinal(1.0, 2.0, 4.0)], 0.5, 3.0) == pytest.approx(1.0)
    # nothing reaches an utterance at 20 s
    assert utterance_final_latency(finals, 18.0, 20.0) is None


def test_latency_by_utterance_length() -> None:
    assert [length_bucket(d) for d in (0.5, 2.99, 3.0, 8.0, 15.0)] == [
        "<3s", "<3s", "3-8s", ">8s", ">8s"]
    out = latency_by_length([(1.0, 0.5), (2.0, None), (5.0, 1.0), (6.0, 3.0), (12.0, 2.0)])
    assert out["<3s"] == {"utterances": 2, "without_final": 1, "p50_s": 0.5, "p95_s": 0.5}
    assert out["3-8s"]["p50_s"] == 2.0 and out["3-8s"]["utterances"] == 2
    assert out[">8s"]["p95_s"] == 2.0


def test_median_of_runs_key_by_key() -> None:
    runs = [
        {"p50": 1.0, "count": 0, "by": {"en": 0.1, "fr": 0.3}, "ids": ["x"], "none": None},
        {"p50": 3.0, "count": 2, "by": {"en": 0.2, "fr": None}, "ids": [], "none": None},
        {"p50": 2.0, "count": 1, "by": {"en": 0.3, "fr": 0.5}, "ids": [], "none": None},
    ]
    assert median_of_runs(runs) == {"p50": 2.0, "count": 1, "by": {"en": 0.2, "fr": 0.4},
                                    "ids": ["x"], "none": None}


def test_quiet_and_phone_band_transforms() -> None:
    t = np.arange(16_000) / 16_000
    low, mid, high = (np.sin(2 * np.pi * f * t) for f in (100.0, 1000.0, 6000.0))
    audio = (0.3 * (low + mid + high)).astype(np.float32)
    q = quiet(audio)
    assert 20 * np.log10(np.max(np.abs(q))) == pytest.approx(-40.0, abs=0.01)
    p = phone_band(audio)
    assert p.size == audio.size and p.dtype == np.float32

    def power(x: np.ndarray, f: float) -> float:
        spec = np.abs(np.fft.rfft(x[2000:-2000]))
        freqs = np.fft.rfftfreq(x[2000:-2000].size, 1 / 16_000)
        return float(spec[np.argmin(np.abs(freqs - f))])

    # the 1 kHz tone passes; 100 Hz and 6 kHz are cut by more than 20 dB relative to it
    assert power(p, 6000.0) < 0.1 * power(p, 1000.0)
    assert power(p, 100.0) < 0.1 * power(p, 1000.0)


def _clip_files(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    import csv
    import json

    from benchmarks.hardset import COLUMNS, write_wav

    for d in ("audio", "ref", "utterances"):
        (tmp_path / d).mkdir(exist_ok=True)
    for r in rows:
        write_wav(tmp_path / f"audio/{r['id']}.wav", np.zeros(int(float(r["dur"]) * 16_000),
                                                             np.float32))
        (tmp_path / f"ref/{r['id']}.txt").write_text(r["text"] + "\n")
        (tmp_path / f"utterances/{r['id']}.json").write_text(json.dumps(
            {"utterances": [{"start": a, "end": b} for a, b in r["utts"]]}))
    path = tmp_path / "manifest.tsv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({"id": r["id"], "audio": f"audio/{r['id']}.wav",
                        "reference": f"ref/{r['id']}.txt", "kind": "transcript",
                        "language": r["lang"], "speakers": 1, "duration_s": r["dur"],
                        "peak_dbfs": 0, "source": "test", "license": "test",
                        "variant": r["variant"], "group": r.get("group", ""),
                        "utterances": f"utterances/{r['id']}.json"})
    return path


def test_a_hard_manifest_reads_like_the_shared_one_and_plans_its_participants(
    tmp_path: Path,
) -> None:
    from benchmarks.common import load_set
    from benchmarks.live import GAP_S, plan

    path = _clip_files(tmp_path, [
        {"id": "fr1", "lang": "fr", "dur": "1.0", "text": "bonjour", "variant": "quiet",
         "utts": [(0.2, 0.8)]},
        {"id": "en1", "lang": "en", "dur": "2.0", "text": "hello", "variant": "quiet",
         "utts": [(0.1, 1.5)]},
        {"id": "en2", "lang": "en", "dur": "1.5", "text": "world", "variant": "quiet",
         "utts": [(0.0, 1.0), (1.1, 1.4)]},
        {"id": "ova", "lang": "en", "dur": "3.0", "text": "a", "variant": "overlap",
         "group": "g", "utts": [(0.0, 2.0)]},
        {"id": "ovb", "lang": "en", "dur": "3.0", "text": "b", "variant": "overlap",
         "group": "g", "utts": [(1.5, 3.0)]},
    ])
    clips, manifest = load_set(str(path))
    assert manifest == path and [c.id for c in clips] == ["fr1", "en1", "en2", "ova", "ovb"]
    assert clips[2].utterances() == [(0.0, 1.0), (1.1, 1.4)]
    assert clips[3].group == "g" and clips[0].variant == "quiet"
    stages = plan(clips, {c.id: c.utterances() for c in clips})
    # English first; one participant per variant and language; the group's two tracks at once
    assert [[b.identity for b in s] for s in stages] == [
        ["bench-quiet-en"], ["bench-overlap-g-0", "bench-overlap-g-1"], ["bench-quiet-fr"]]
    en = stages[0][0]
    assert [r.offset for r in en.rows] == [GAP_S, GAP_S + 2.0 + GAP_S]
    assert en.audio.size == int((GAP_S * 3 + 2.0 + 1.5) * 16_000)


def test_live_figures_from_a_scripted_caption_sequence(tmp_path: Path) -> None:
    from benchmarks.common import load_set
    from benchmarks.live import analyse, plan
    from greffier.livekit.client import ReceivedCaption
    from greffier.subtitles.protocol import CaptionMessage, CaptionSpeaker

    path = _clip_files(tmp_path, [
        {"id": "a", "lang": "en", "dur": "4.0", "text": "one two three four five six",
         "variant": "v", "utts": [(0.5, 3.5)]},
        {"id": "b", "lang": "en", "dur": "2.0", "text": "seven eight", "variant": "v",
         "utts": [(0.2, 1.8)]},
    ])
    clips, _ = load_set(str(path))
    (stage,) = plan(clips, {c.id: c.utterances() for c in clips})
    rows = stage[0].rows
    for r in rows:
        r.started_at = 1000.0  # track's first sample: a at 1002.0, b at 1008.0 (wall)
    who = rows[0].identity

    def cap(at: float, seg: str, final: bool, text: str, start: float, end: float) -> Any:
        msg = CaptionMessage(segment_id=seg, track_sid="T", speaker=CaptionSpeaker(
            identity=who, name=who), language="en", start=start, end=end, final=final,
            text=text, meeting_started_at=1000.0)
        return ReceivedCaption(received_at=at, via="data", segment_id=seg,
                               speaker_identity=who, final=final, text=text, message=msg)

    captions = [
        cap(1003.0, "s1", False, "one two", 2.5, 3.5),
        cap(1006.3, "s1", True, "one two three four five six", 2.5, 5.4),  # a ends at 1005.5
        cap(1006.5, "s1", True, "one two three four five six", 2.5, 5.4),  # sent twice: a repeat
        cap(1008.9, "s2", False, "seven", 8.2, 8.8),
        cap(1010.5, "s2", True, "", 8.2, 9.8),  # b: retracted, no final
    ]
    res = analyse(rows, captions, {"audio_s": 10.0, "wall_s": 12.0})
    a, b = res["per_clip"]
    assert a["utterances"][0]["final_latency_s"] == pytest.approx(0.8)
    assert a["first_interim_latency_s"] == pytest.approx(0.5)
    assert a["repeated_phrases"] == ["one two three four five six"]
    assert b["finals"] == [] and b["retracted_segments"] == 1
    assert res["clips_without_final"] == 1 and res["retracted_segments"] == 1
    assert res["repeated_phrases"] == 1 and res["utterances_without_final"] == 1
    assert res["final_latency_by_utterance_length"]["3-8s"]["p50_s"] == pytest.approx(0.8)
    assert res["final_latency_by_utterance_length"]["<3s"]["without_final"] == 1
    assert res["by_variant"]["v"]["clips"] == 2


def test_a_late_caption_goes_to_the_clip_it_transcribes(tmp_path: Path) -> None:
    from benchmarks.common import load_set
    from benchmarks.live import attribute, plan
    from greffier.livekit.client import ReceivedCaption
    from greffier.subtitles.protocol import CaptionMessage, CaptionSpeaker

    path = _clip_files(tmp_path, [
        {"id": "short", "lang": "en", "dur": "1.8", "text": "Has never been surpassed.",
         "variant": "v", "utts": [(0.0, 1.7)]},
        {"id": "next", "lang": "en", "dur": "8.0", "text": "Printing, then, for our purpose",
         "variant": "v", "utts": [(0.3, 7.5)]},
    ])
    clips, _ = load_set(str(path))
    (stage,) = plan(clips, {c.id: c.utterances() for c in clips})
    rows = stage[0].rows
    times = 1000.0 + 0.02 * np.arange(stage[0].audio.size // 320)
    for r in rows:
        r.frame_times = times
    # "short" speaks 1002.0-1003.7, "next" from 1006.1; the final is placed 2 s late
    assert rows[0].wall(1.7) == pytest.approx(1003.7) and rows[1].speech_start == pytest.approx(
        1006.1)
    msg = CaptionMessage(segment_id="s", track_sid="T", speaker=CaptionSpeaker(
        identity="x", name="x"), language="en", start=4.0, end=5.7, final=True,
        text="Has never been surpassed.", meeting_started_at=1000.0)
    cap = ReceivedCaption(received_at=1006.5, via="data", segment_id="s", speaker_identity="x",
                          final=True, text=msg.text, message=msg)
    owner, distance = attribute([cap], rows)
    assert owner is rows[0] and distance == pytest.approx(1.15)
    # a publisher that fell 0.5 s behind from the second clip on moves its speech with it
    times[int(4.0 / 0.02):] += 0.5
    assert rows[1].speech_start == pytest.approx(1006.6)


def test_normalised_wer_uses_each_pairs_language_and_set_labels(tmp_path: Path) -> None:
    from benchmarks.common import normalised_wer, set_label, wer
    from greffier.core.config import Settings

    refs, hyps = ["Twenty-five colours.", "Il a 25 ans."], ["25 colors", "il a vingt-cinq ans"]
    assert normalised_wer(refs, hyps, ["en", "fr"]) == 0.0
    assert wer(refs, hyps) > 0.5  # the project's own normaliser keeps spellings and numbers
    settings = Settings(speech_data=tmp_path)
    assert set_label(str(tmp_path / "manifest.tsv"), settings) == "shared"
    assert set_label("hard", settings) == "hard" and set_label("x.tsv", settings) == "x.tsv"


def test_speech_the_vad_missed_still_belongs_to_its_clip(tmp_path: Path) -> None:
    from benchmarks.common import load_set
    from benchmarks.live import attribute, plan
    from greffier.livekit.client import ReceivedCaption
    from greffier.subtitles.protocol import CaptionMessage, CaptionSpeaker

    path = _clip_files(tmp_path, [
        {"id": "long", "lang": "en", "dur": "12.0", "text": "so this is the sick corpus",
         "variant": "v", "utts": [(0.0, 1.0)]},  # the VAD heard the first second only
    ])
    clips, _ = load_set(str(path))
    (stage,) = plan(clips, {c.id: c.utterances() for c in clips})
    (row,) = stage[0].rows
    row.started_at = 1000.0  # clip from 1002.0 to 1014.0; speech (VAD) 1002.0-1003.0
    msg = CaptionMessage(segment_id="s", track_sid="T", speaker=CaptionSpeaker(
        identity="x", name="x"), language="en", start=9.0, end=11.0, final=True,
        text="so this is the sick corpus", meeting_started_at=1000.0)
    cap = ReceivedCaption(received_at=1012.0, via="data", segment_id="s", speaker_identity="x",
                          final=True, text=msg.text, message=msg)
    owner, distance = attribute([cap], [row])
    assert owner is row and distance == pytest.approx(7.0)  # reported as off its speech
    msg2 = msg.model_copy(update={"start": 20.0, "end": 21.0})
    far = ReceivedCaption(received_at=1022.0, via="data", segment_id="t", speaker_identity="x",
                          final=True, text=msg.text, message=msg2)
    assert attribute([far], [row]) == (None, float("inf"))


def test_histogram_quantile_between_two_scrapes() -> None:
    from benchmarks.reliability import histogram_quantile

    inf = float("inf")
    before = {0.5: 5.0, 1.0: 5.0, 2.0: 5.0, inf: 5.0}  # counted before the run: left out
    after = {0.5: 15.0, 1.0: 65.0, 2.0: 100.0, inf: 105.0}
    assert histogram_quantile(before, after, 0.5) == 0.9  # rank 50: 80 % into (0.5, 1]
    assert histogram_quantile(before, after, 0.95) == 2.0
    assert histogram_quantile(after, after, 0.5) is None  # nothing counted
