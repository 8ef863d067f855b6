"""Speaker tracking across windows and online stitching, on synthetic embeddings (no model)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from greffier.core.audio import SAMPLE_RATE
from greffier.core.config import DiarizationSettings
from greffier.core.errors import ConfigurationError
from greffier.core.types import SpeakerTurn
from greffier.diarization.online import (
    OnlineDiarizer,
    SpeakerTracker,
    WindowDiarization,
    clip_turns,
    merge_turns,
)

pytestmark = pytest.mark.unit

DIM = 192


def voices(n: int, seed: int = 0) -> list[npt.NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v = rng.standard_normal(DIM)
        out.append((v / np.linalg.norm(v)).astype(np.float32))
    return out


def noisy(voice: npt.NDArray[np.float32], rng: np.random.Generator, cos: float = 0.8) -> (
    npt.NDArray[np.float32]
):
    """A unit vector at cosine ~``cos`` from ``voice``."""
    noise = rng.standard_normal(DIM)
    noise -= noise.dot(voice) * voice
    noise /= np.linalg.norm(noise)
    v = cos * voice + np.sqrt(1 - cos**2) * noise
    return v.astype(np.float32)


def test_labels_stay_stable_over_many_shuffled_windows() -> None:
    rng = np.random.default_rng(1)
    truth = voices(4)
    tracker = SpeakerTracker()
    seen: dict[int, str] = {}
    for _ in range(200):
        present = rng.choice(4, size=rng.integers(1, 4), replace=False)
        local_names = [str(i + 1) for i in rng.permutation(len(present))]
        embeddings = {
            name: noisy(truth[s], rng, cos=rng.uniform(0.6, 0.95))
            for name, s in zip(local_names, present, strict=True)
        }
        mapping = tracker.assign(embeddings, dict.fromkeys(local_names, 3.0))
        assert len(set(mapping.values())) == len(mapping), "one label per local speaker"
        for name, s in zip(local_names, present, strict=True):
            assert seen.setdefault(int(s), mapping[name]) == mapping[name]
    assert sorted(seen.values()) == ["1", "2", "3", "4"]
    assert len(tracker.speakers) == 4


def test_labels_count_from_one_in_order_of_appearance() -> None:
    a, b, c = voices(3, seed=2)
    tracker = SpeakerTracker()
    assert tracker.assign({"1": b}) == {"1": "1"}
    assert tracker.assign({"1": a, "2": b}) == {"1": "2", "2": "1"}
    assert tracker.assign({"2": c, "1": a}) == {"2": "3", "1": "2"}


def test_threshold_decides_between_known_and_new() -> None:
    rng = np.random.default_rng(3)
    (a,) = voices(1, seed=3)
    close, far = noisy(a, rng, cos=0.5), noisy(a, rng, cos=0.3)
    tracker = SpeakerTracker(threshold=0.6)  # accepts cosine >= 0.4
    tracker.assign({"1": a})
    assert tracker.assign({"1": close}) == {"1": "1"}
    assert tracker.assign({"1": far}) == {"1": "2"}


def test_two_local_speakers_never_share_a_label() -> None:
    rng = np.random.default_rng(4)
    (a,) = voices(1, seed=4)
    tracker = SpeakerTracker()
    tracker.assign({"1": a})
    # both locals resemble "1": the closer one gets it, the other becomes someone new
    mapping = tracker.assign({"1": noisy(a, rng, 0.7), "2": noisy(a, rng, 0.9)})
    assert mapping == {"2": "1", "1": "2"}


def test_short_speakers_do_not_found_new_speakers_or_move_centroids() -> None:
    a, b = voices(2, seed=5)
    tracker = SpeakerTracker(min_speech_s=1.0)
    tracker.assign({"1": a}, {"1": 5.0})
    before = tracker.speakers[0].centroid.copy()
    # a short, unknown-sounding speaker joins the nearest known speaker
    assert tracker.assign({"1": b}, {"1": 0.4}) == {"1": "1"}
    assert len(tracker.speakers) == 1
    np.testing.assert_array_equal(tracker.speakers[0].centroid, before)
    # with enough speech, the same voice founds a speaker
    assert tracker.assign({"1": b}, {"1": 2.0}) == {"1": "2"}


def test_the_first_speaker_is_created_even_if_short_or_without_embedding() -> None:
    a, b = voices(2, seed=6)
    tracker = SpeakerTracker(overlap_weight=0.5)
    assert tracker.assign({"1": None}, {"1": 0.3}) == {"1": "1"}
    # no evidence that a voice is the one founded without embedding: a new speaker
    assert tracker.assign({"1": a}, {"1": 3.0}) == {"1": "2"}
    # with evidence from the labelled turns, the label takes the voice as its centroid
    assert tracker.assign({"1": b}, {"1": 3.0}, overlap={"1": {"1": 1.0}}) == {"1": "1"}
    np.testing.assert_allclose(tracker.speakers[0].centroid, b, atol=1e-6)


def test_centroids_follow_the_voice_with_bounded_memory() -> None:
    rng = np.random.default_rng(7)
    (a,) = voices(1, seed=7)
    drifted = noisy(a, rng, cos=0.7)
    tracker = SpeakerTracker(threshold=0.6, memory_s=10.0)
    tracker.assign({"1": a}, {"1": 100.0})
    for _ in range(20):
        tracker.assign({"1": drifted}, {"1": 5.0})
    centroid = tracker.speakers[0].centroid
    assert float(centroid @ drifted) > 0.95
    assert abs(float(np.linalg.norm(centroid)) - 1.0) < 1e-5


def test_overlap_with_labelled_turns_can_decide() -> None:
    a, b = voices(2, seed=8)
    tracker = SpeakerTracker(threshold=0.6, overlap_weight=0.5)
    tracker.assign({"1": a, "2": b})
    ambiguous = ((a + b) / np.linalg.norm(a + b)).astype(np.float32)  # ~0.7 to both
    assert tracker.assign({"1": ambiguous}, overlap={"1": {"2": 1.0}}) == {"1": "2"}
    # no embedding at all: overlap alone
    assert tracker.assign({"1": None}, {"1": 2.0}, overlap={"1": {"1": 0.9}}) == {"1": "1"}


def test_max_speakers_caps_new_speakers() -> None:
    a, b, c = voices(3, seed=9)
    tracker = SpeakerTracker(max_speakers=2)
    tracker.assign({"1": a, "2": b})
    mapping = tracker.assign({"1": c})
    assert mapping["1"] in {"1", "2"}
    assert len(tracker.speakers) == 2


def test_invalid_threshold_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        SpeakerTracker(threshold=0.0)


def test_turn_helpers() -> None:
    turns = [SpeakerTurn(0, 1, "1"), SpeakerTurn(1.02, 2, "1"), SpeakerTurn(1.5, 3, "2")]
    assert merge_turns(turns) == [SpeakerTurn(0, 2, "1"), SpeakerTurn(1.5, 3, "2")]
    assert clip_turns(turns, 1.6, 2.5) == [SpeakerTurn(1.6, 2, "1"), SpeakerTurn(1.6, 2.5, "2")]


# -- online stitching with a fake model ----------------------------------------------------


class FakeModel:
    """Diarizes windows of a scripted meeting. The audio carries its own time: sample i of the
    stream holds i / SAMPLE_RATE. Local labels are shuffled per window; embeddings are noisy."""

    def __init__(self, script: list[SpeakerTurn], seed: int = 0) -> None:
        self.script = script
        self.rng = np.random.default_rng(seed)
        speakers = sorted({t.speaker for t in script})
        self.voice = dict(zip(speakers, voices(len(speakers), seed=seed + 100), strict=True))
        self.calls: list[tuple[float, float]] = []

    def diarize_window(self, audio: npt.NDArray[np.floating]) -> WindowDiarization:
        t0 = float(audio[0])
        t1 = t0 + audio.size / SAMPLE_RATE
        self.calls.append((t0, t1))
        inside = clip_turns(self.script, t0, t1)
        present = sorted({t.speaker for t in inside})
        local = {s: str(i + 1) for i, s in enumerate(self.rng.permutation(present))}
        turns = tuple(SpeakerTurn(t.start - t0, t.end - t0, local[t.speaker]) for t in inside)
        embeddings = {local[s]: noisy(self.voice[s], self.rng, 0.85) for s in present}
        return WindowDiarization(turns, embeddings)


def clock_audio(seconds: float) -> npt.NDArray[np.float32]:
    return (np.arange(int(seconds * SAMPLE_RATE), dtype=np.float64) / SAMPLE_RATE).astype(
        np.float32
    )


SCRIPT = [
    SpeakerTurn(0.5, 7.0, "alice"),
    SpeakerTurn(7.5, 15.0, "bob"),
    SpeakerTurn(14.0, 16.0, "alice"),
    SpeakerTurn(16.5, 30.0, "carol"),
    SpeakerTurn(30.5, 41.0, "alice"),
    SpeakerTurn(41.5, 48.0, "bob"),
]


def run_stream(
    online: OnlineDiarizer, seconds: float, chunk_s: float = 0.1
) -> list[list[SpeakerTurn]]:
    audio = clock_audio(seconds)
    step = int(chunk_s * SAMPLE_RATE)
    polls = []
    for i in range(0, audio.size, step):
        online.push(audio[i : i + step])
        got = online.poll()
        if got:
            polls.append(got)
    polls.append(online.flush())
    return polls


def test_online_stitching_reproduces_the_script_with_stable_labels() -> None:
    model = FakeModel(SCRIPT)
    online = OnlineDiarizer(model, window_s=12, step_s=4)
    run_stream(online, 48.0)
    timeline = online.timeline()
    names = {"alice": "1", "bob": "2", "carol": "3"}
    expected = merge_turns([SpeakerTurn(t.start, t.end, names[t.speaker]) for t in SCRIPT])
    assert [t.speaker for t in timeline] == [t.speaker for t in expected]
    for got, want in zip(timeline, expected, strict=True):
        assert got.start == pytest.approx(want.start, abs=1e-3)
        assert got.end == pytest.approx(want.end, abs=1e-3)
    assert online.committed_until == pytest.approx(48.0)


def test_online_runs_the_model_once_per_step_on_the_last_window() -> None:
    model = FakeModel(SCRIPT)
    online = OnlineDiarizer(model, window_s=12, step_s=4)
    audio = clock_audio(20.0)
    online.push(audio[: 3 * SAMPLE_RATE])
    assert not online.ready()
    assert online.poll() == []
    online.push(audio[3 * SAMPLE_RATE : 9 * SAMPLE_RATE])
    assert online.ready()
    online.poll()
    assert model.calls == [(0.0, 9.0)]
    assert online.poll() == []  # nothing new
    online.push(audio[9 * SAMPLE_RATE :])
    online.poll()
    assert model.calls[-1] == (pytest.approx(8.0), pytest.approx(20.0))
    assert online.windows == 2


def test_poll_returns_the_revised_part_and_commits_behind_a_tail() -> None:
    model = FakeModel(SCRIPT)
    online = OnlineDiarizer(model, window_s=12, step_s=4)
    assert online.tail_s == 6.0
    audio = clock_audio(24.0)
    online.push(audio[: 12 * SAMPLE_RATE])
    first = online.poll()
    assert online.revised_from == 0.0
    assert online.committed_until == pytest.approx(6.0)
    assert first[0].start == pytest.approx(0.5)
    online.push(audio[12 * SAMPLE_RATE : 16 * SAMPLE_RATE])
    second = online.poll()
    assert online.revised_from == pytest.approx(6.0)
    assert online.committed_until == pytest.approx(10.0)
    assert all(t.start >= 6.0 - 1e-6 for t in second)
    assert second[-1].end == pytest.approx(16.0)
    # the timeline is the committed part plus the latest answer
    assert clip_turns(online.timeline(), 6.0, 16.0) == merge_turns(second)


def test_online_memory_is_bounded_by_the_window() -> None:
    model = FakeModel(SCRIPT)
    online = OnlineDiarizer(model, window_s=12, step_s=4)
    run_stream(online, 48.0, chunk_s=0.5)
    assert online._buffer.size == 12 * SAMPLE_RATE
    assert online.duration == pytest.approx(48.0)


def test_online_settings_and_validation() -> None:
    model = FakeModel(SCRIPT)
    online = OnlineDiarizer.from_settings(model, DiarizationSettings(window_s=8, step_s=2))
    assert (online.window_s, online.step_s, online.tail_s) == (8, 2, 4)
    assert OnlineDiarizer(model, window_s=10, step_s=8).tail_s == 2
    with pytest.raises(ConfigurationError):
        OnlineDiarizer(model, window_s=4, step_s=5)


def test_flush_without_new_audio_commits_the_provisional_turns() -> None:
    model = FakeModel(SCRIPT)
    online = OnlineDiarizer(model, window_s=12, step_s=4)
    online.push(clock_audio(12.0))
    online.poll()
    assert online.committed_until == pytest.approx(6.0)
    rest = online.flush()
    assert online.committed_until == pytest.approx(12.0)
    assert rest and rest[-1].end == pytest.approx(12.0)
    assert len(model.calls) == 1


def test_silence_gives_no_turns() -> None:
    class Silent:
        def diarize_window(self, audio: npt.NDArray[np.floating]) -> WindowDiarization:
            return WindowDiarization(())

    online = OnlineDiarizer(Silent(), window_s=12, step_s=4)
    online.push(np.zeros(20 * SAMPLE_RATE, np.float32))
    assert online.poll() == []
    assert online.flush() == []
    assert online.timeline() == []
    assert online.tracker.speakers == []
