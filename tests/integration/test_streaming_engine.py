"""The streaming engine on real recordings with the real model (simulated clock unless said)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from greffier.asr.engine import InferenceEngine
from greffier.asr.replay import ReplayResult, replay
from greffier.asr.streaming import StreamingOptions, StreamingTranscriber
from greffier.asr.vad import SileroVad
from greffier.asr.whisper import DecodeOptions, WhisperDecoder
from greffier.core.audio import SAMPLE_RATE, read_audio, resample
from greffier.core.config import AsrSettings, Settings
from greffier.core.text import word_error_rate
from greffier.core.types import TranscriptEventType

pytestmark = pytest.mark.integration

# A spread of the English clips: read speech, a noisy broadcast, a quiet FLEURS clip, numbers.
ENGLISH = (
    "jfk", "lhotse_librispeech_2412-153948-0000", "ps_librivox_sense_sensibility_01-0870",
    "ps_librivox_sense_sensibility_01-0890", "fleurs-en-000", "fleurs-en-005",
    "ljspeech_LJ001-0003", "ljspeech_LJ001-0007", "ljspeech_LJ001-0012", "ljspeech_LJ001-0016",
)
FRENCH = ("fleurs-fr-001", "fleurs-fr-003", "fleurs-fr-004", "fleurs-fr-007")


@pytest.fixture(scope="module")
def engine(settings: Settings):
    decoder = WhisperDecoder.load(AsrSettings(model="base"), settings.cache_dir)
    eng = InferenceEngine(decoder).start()
    yield eng
    eng.close()


def run(engine: InferenceEngine, audio: np.ndarray, **options) -> ReplayResult:
    async def go() -> ReplayResult:
        return await replay(audio, lambda: StreamingTranscriber(
            engine, StreamingOptions(synchronous=True, **options)))

    return asyncio.run(go())


def assert_consistent(result: ReplayResult) -> None:
    """No interim after its segment's final; confirmed words never rewritten in a segment."""
    for updates in result.segments().values():
        kinds = [u.event.type for u in updates]
        if TranscriptEventType.FINAL in kinds:
            assert kinds.index(TranscriptEventType.FINAL) == len(kinds) - 1
        confirmed: tuple = ()
        for u in updates:
            if u.event.type is TranscriptEventType.INTERIM:
                assert u.event.words[: len(confirmed)] == confirmed
                confirmed = u.event.words[: u.event.confirmed_words]


def test_english_finals_are_accurate_and_consistent(engine, clips) -> None:
    refs, hyps = [], []
    for cid in ENGLISH:
        result = run(engine, read_audio(clips[cid].audio), language="en")
        assert_consistent(result)
        assert result.interims, cid
        refs.append(clips[cid].text)
        hyps.append(result.final_text())
    wer = word_error_rate(refs, hyps).wer
    # Measured 4.4 % on these clips (offline faster-whisper, same model: 4.9 %).
    assert wer <= 0.08, f"WER {wer:.1%}"


def test_french_is_detected_and_transcribed(engine, clips) -> None:
    refs, hyps, detected = [], [], []
    for cid in FRENCH:
        result = run(engine, read_audio(clips[cid].audio))  # language: auto
        assert_consistent(result)
        detected += [f.event.language for f in result.finals if f.event.text]
        refs.append(clips[cid].text)
        hyps.append(result.final_text())
    assert detected and detected.count("fr") / len(detected) >= 0.75, detected
    wer = word_error_rate(refs, hyps).wer
    # Measured 31 % (base is weak in French; offline faster-whisper: 30 %).
    assert wer <= 0.38, f"WER {wer:.1%}"


def test_forced_language_wins_over_detection(engine, clips) -> None:
    result = run(engine, read_audio(clips["fleurs-en-001"].audio), language="en")
    assert {f.event.language for f in result.finals if f.event.text} == {"en"}
    fr = run(engine, read_audio(clips["fleurs-fr-004"].audio), language="fr")
    assert word_error_rate([clips["fleurs-fr-004"].text], [fr.final_text()]).wer <= 0.45


def non_speech_bed(clips, seconds: float, seed: int) -> np.ndarray:
    """Ten minutes of what is not speech: the recordings' own pauses and room tone, white and
    pink noise, mains hum, synthetic music, at several levels."""
    rng = np.random.default_rng(seed)
    vad = SileroVad.shared()
    pauses = []
    for cid in ("jfk", "ami_debug_dev00", "ami_debug_dev01", "fleurs-en-000", "fleurs-fr-001"):
        audio = read_audio(clips[cid].audio)
        probs = vad.stream().process(audio)
        for i, p in enumerate(probs):
            if p < 0.05:
                pauses.append(audio[i * 512 : (i + 1) * 512])
    room_tone = np.concatenate(pauses)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    white = rng.standard_normal(n)
    pink = np.cumsum(rng.standard_normal(n))
    pink = (pink - np.convolve(pink, np.ones(400) / 400, mode="same")) / 30
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3))
    notes = 220 * 2 ** (rng.integers(0, 12, size=int(seconds * 2)) / 12)
    music = np.sin(2 * np.pi * np.repeat(notes, SAMPLE_RATE // 2)[:n] * t) * (
        0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)
    )
    tone = np.resize(room_tone, n) * 3
    bed = np.zeros(n)
    kinds = [white * 0.02, white * 0.1, pink * 0.1, hum * 0.1, music * 0.2, tone]
    block = 10 * SAMPLE_RATE
    for i in range(0, n, block):
        bed[i : i + block] = kinds[(i // block) % len(kinds)][i : i + block]
    return np.clip(bed, -1, 1).astype(np.float32)


def test_ten_minutes_of_silence_give_no_caption(engine) -> None:
    result = run(engine, np.zeros(600 * SAMPLE_RATE, np.float32))
    assert [e for e in result.events if e.event.text] == []


def test_ten_minutes_of_noise_give_at_most_one_caption(engine, clips) -> None:
    result = run(engine, non_speech_bed(clips, 600, seed=3))
    captions = [e for e in result.finals if e.event.text]
    assert len(captions) <= 1, [e.event.text for e in captions]


def test_batched_decoding_is_as_accurate_as_single_decoding(engine, clips) -> None:
    decoder = engine.decoder
    assert isinstance(decoder, WhisperDecoder)
    ids = ("ljspeech_LJ001-0002", "jfk", "fleurs-fr-004")
    requests = [(read_audio(clips[c].audio), DecodeOptions(language=clips[c].language))
                for c in ids]
    refs = [clips[c].text for c in ids]
    single = [decoder.decode_batch([r])[0].text for r in requests]
    batched = [h.text for h in decoder.decode_batch(requests)]
    # A batch pads every item to its longest: small differences, no loss of accuracy.
    for ref, a, b in zip(refs, single, batched, strict=True):
        assert word_error_rate([ref], [b]).wer <= word_error_rate([ref], [a]).wer + 0.05, (a, b)


async def test_concurrent_real_time_streams_keep_their_finals(engine, clips) -> None:
    """Four speakers at once on two cores: interims thin out, every final still arrives."""
    ids = ("jfk", "ljspeech_LJ001-0001", "lhotse_librispeech_2412-153948-0000", "fleurs-en-005")
    audios = [read_audio(clips[c].audio) for c in ids]
    results = await asyncio.gather(*[
        replay(a, lambda: StreamingTranscriber(engine, StreamingOptions(language="en")),
               realtime=True)
        for a in audios
    ])
    for cid, result in zip(ids, results, strict=True):
        assert result.interims, f"{cid} got no interim (unfair scheduling)"
        assert_consistent(result)
        wer = word_error_rate([clips[cid].text], [result.final_text()]).wer
        assert wer <= 0.2, f"{cid}: {wer:.1%} {result.final_text()}"


def test_resampled_phone_audio_is_transcribed(engine, clips) -> None:
    audio = read_audio(clips["ljspeech_LJ001-0009"].audio)
    phone = resample(resample(audio, SAMPLE_RATE, 8_000), 8_000, SAMPLE_RATE)
    result = run(engine, phone, language="en")
    assert word_error_rate([clips["ljspeech_LJ001-0009"].text], [result.final_text()]).wer <= 0.2
    assert retracted(result) == 0


# -- speech the engine was never tuned on (issue 8): levels, bands, chains, short words ----

def at_peak(audio: np.ndarray, peak_dbfs: float) -> np.ndarray:
    return (audio * (10 ** (peak_dbfs / 20) / np.max(np.abs(audio)))).astype(np.float32)


def repeated_phrases(result: ReplayResult) -> int:
    """Repeated phrases in the finals: within one, or across the seam of two."""
    from greffier.asr.agreement import word_key
    from greffier.asr.repeats import find_repeat

    count, previous = 0, []
    for final in result.finals:
        keys = [word_key(w) for w in final.event.words]
        count += find_repeat(keys) is not None
        count += bool(previous) and find_repeat(previous + keys, seam=len(previous)) is not None
        previous = keys or previous
    return count


def retracted(result: ReplayResult) -> int:
    """Segments whose interims were shown and whose final is empty."""
    return sum(
        1 for updates in result.segments().values()
        if any(u.event.type is TranscriptEventType.INTERIM for u in updates)
        and any(u.event.type is TranscriptEventType.FINAL and not u.event.text for u in updates)
    )


def test_quiet_speech_is_captioned_as_fast_and_as_well_as_loud_speech(engine, clips) -> None:
    """Clips scaled to a -40 dBFS peak (two of six got no caption before the level gain)."""
    ids = ("ljspeech_LJ001-0002", "fleurs-en-001", "sr_english_one_two_three")
    lead = np.zeros(SAMPLE_RATE // 2, np.float32)
    for cid in ids:
        audio = np.concatenate([lead, read_audio(clips[cid].audio)])
        loud = run(engine, at_peak(audio, -3), language="en")
        quiet = run(engine, at_peak(audio, -40), language="en")
        assert quiet.finals and quiet.final_text(), f"{cid}: no caption at -40 dBFS"
        assert retracted(quiet) == 0
        wer_loud = word_error_rate([clips[cid].text], [loud.final_text()]).wer
        wer_quiet = word_error_rate([clips[cid].text], [quiet.final_text()]).wer
        assert wer_quiet <= wer_loud + 0.1, (cid, quiet.final_text(), loud.final_text())
        first_quiet = quiet.first_interim_latencies()[0]
        first_loud = loud.first_interim_latencies()[0]
        # measured: at most +0.9 s (fleurs-en-001: 1.62 s against 0.74 s), often equal
        assert first_quiet <= first_loud + 1.0, (cid, first_quiet, first_loud)


def test_short_utterances_of_one_to_three_words_are_captioned(engine, clips) -> None:
    gap = np.zeros(SAMPLE_RATE, np.float32)
    one_word = read_audio(clips["ljspeech_LJ001-0001"].audio)[: int(0.62 * SAMPLE_RATE)]
    three_words = read_audio(clips["sr_english_one_two_three"].audio)
    for audio, expected in ((one_word, ""), (three_words, "3")):
        # the lone word is captioned (base hears "Punting" in it: a wrong word, not a lost one)
        result = run(engine, np.concatenate([gap, audio, gap]), language="en")
        assert result.final_text() and expected in result.final_text(), result.final_text()
        assert retracted(result) == 0


def test_chained_sentences_without_pauses_are_said_once_and_in_time(engine, clips) -> None:
    """Three read sentences back to back, no pause between them: every sentence captioned,
    none twice, nothing retracted."""
    ids = ("ljspeech_LJ001-0004", "ljspeech_LJ001-0006", "ljspeech_LJ001-0011")
    audio = np.concatenate([read_audio(clips[c].audio) for c in ids])
    result = run(engine, audio, language="en")
    assert retracted(result) == 0
    assert repeated_phrases(result) == 0, [f.event.text for f in result.finals]
    wer = word_error_rate([" ".join(clips[c].text for c in ids)], [result.final_text()]).wer
    assert wer <= 0.12, result.final_text()


def test_48k_stereo_input_through_the_audio_module_is_transcribed(engine, clips) -> None:
    from greffier.core.audio import StreamResampler, float32_to_pcm16, pcm16_to_float32, to_mono

    cid = "ljspeech_LJ001-0013"
    mono = resample(read_audio(clips[cid].audio), SAMPLE_RATE, 48_000)
    stereo = float32_to_pcm16(np.stack([mono, mono * 0.5], axis=1).reshape(-1))
    rs = StreamResampler(48_000)
    parts = []
    for i in range(0, stereo.size, 960 * 2):  # 20 ms frames, as a LiveKit track delivers them
        parts.append(rs.process(to_mono(pcm16_to_float32(stereo[i : i + 960 * 2]), 2)))
    audio = np.concatenate([*parts, rs.flush()])
    result = run(engine, audio, language="en")
    assert word_error_rate([clips[cid].text], [result.final_text()]).wer <= 0.15
    assert retracted(result) == 0


def test_a_buffer_ending_at_a_pause_is_not_said_again_into_the_padding(engine, clips) -> None:
    """The cause of the sentence lost in the two-speaker live test: decoded up to the pause
    after "Printing," or "...at present concerned,", Whisper (base) repeated the words into
    the encoder padding; the guard rejected the whole decode as a loop and the final was
    empty. The repeated words have no duration in the alignment and are cut."""
    from greffier.asr.guards import HallucinationGuard

    audio = np.concatenate([np.zeros(int(1.5 * SAMPLE_RATE), np.float32),
                            read_audio(clips["ljspeech_LJ001-0001"].audio)])
    decoder = engine.decoder
    guard = HallucinationGuard()
    for end_s, expected in ((2.22, "printing"),
                            (5.58, "printing in the only sense with which we are at present")):
        hyp = decoder.decode_batch([(audio[: int(end_s * SAMPLE_RATE)],
                                     DecodeOptions(language="en"))])[0]
        verdict = guard.check(hyp)
        assert not verdict.rejected, (end_s, hyp.text)
        text = verdict.text.lower().replace(",", "").replace(".", "")
        assert text.startswith(expected) and text.count("printing") == 1, (end_s, hyp.text)
