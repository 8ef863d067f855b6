"""The engine's scheduling policy, with a decoder whose timing the test controls: decodes are
held and released by the test, and their duration passes on the engine's fake clock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from greffier.asr.engine import InferenceEngine, RequestKind, Superseded
from greffier.asr.whisper import DecodeOptions
from greffier.core.errors import EngineClosedError
from greffier.core.types import Hypothesis

pytestmark = pytest.mark.unit


class FakeClock:
    """The engine's clock, moved by the test and by the decoder (no real time passes)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ScriptedDecoder:
    """Records the order of requests; each call blocks until the test releases it, then takes
    ``delay`` seconds of the fake ``clock``."""

    multilingual = True

    def __init__(self, hold: bool = False, delay: float = 0.0) -> None:
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        if not hold:
            self.gate.set()
        self.delay = delay
        self.clock = FakeClock()
        self.started = threading.Event()

    def decode_batch(
        self, requests: Sequence[tuple[np.ndarray, DecodeOptions]]
    ) -> list[Hypothesis]:
        self.calls.append([o.prompt for _, o in requests])
        self.started.set()
        self.gate.wait(5)
        self.clock.advance(self.delay)
        return [Hypothesis(words=(), language="en", text=o.prompt) for _, o in requests]


def audio(seconds: float = 1.0) -> np.ndarray:
    return np.zeros(int(16000 * seconds), np.float32)


def opts(tag: str, beam: int = 1) -> DecodeOptions:
    return DecodeOptions(language="en", prompt=tag, beam_size=beam)


def test_finals_first_then_oldest_interims() -> None:
    dec = ScriptedDecoder(hold=True)
    engine = InferenceEngine(dec).start()
    blocker = engine.submit("x", RequestKind.INTERIM, audio(), opts("blocker"))
    assert dec.started.wait(2)
    futures = [
        engine.submit("a", RequestKind.INTERIM, audio(), opts("a-interim")),
        engine.submit("b", RequestKind.INTERIM, audio(), opts("b-interim")),
        engine.submit("c", RequestKind.FINAL, audio(), opts("c-final")),
        engine.submit("a", RequestKind.FINAL, audio(), opts("a-final")),
    ]
    dec.gate.set()
    with pytest.raises(Superseded):  # a's final came after it: its interim is stale
        futures[0].result(5)
    for f in [blocker, *futures[1:]]:
        f.result(5)
    order = [c[0] for c in dec.calls]
    assert order == ["blocker", "c-final", "a-final", "b-interim"]
    engine.close()


def test_a_newer_interim_supersedes_the_pending_one_and_finals_are_kept() -> None:
    dec = ScriptedDecoder(hold=True)
    engine = InferenceEngine(dec).start()
    engine.submit("x", RequestKind.INTERIM, audio(), opts("blocker"))
    assert dec.started.wait(2)
    old = engine.submit("a", RequestKind.INTERIM, audio(), opts("old"))
    final = engine.submit("a", RequestKind.FINAL, audio(), opts("final"))
    new = engine.submit("a", RequestKind.INTERIM, audio(), opts("new"))
    with pytest.raises(Superseded):
        old.result(1)
    dec.gate.set()
    assert final.result(5).text == "final" and new.result(5).text == "new"
    assert engine.stats().superseded_interims == 1
    engine.close()


def test_interims_waiting_too_long_are_dropped_under_overload() -> None:
    dec = ScriptedDecoder(hold=True)
    engine = InferenceEngine(dec, interim_max_wait_s=0.05, clock=dec.clock).start()
    engine.submit("x", RequestKind.INTERIM, audio(), opts("blocker"))
    assert dec.started.wait(2)
    stale = engine.submit("a", RequestKind.INTERIM, audio(), opts("stale"))
    final = engine.submit("b", RequestKind.FINAL, audio(), opts("final"))
    dec.clock.advance(0.2)
    dec.gate.set()
    assert final.result(5).text == "final"
    with pytest.raises(Superseded):
        stale.result(5)
    assert engine.stats().dropped_interims == 1
    engine.close()


def test_batches_group_requests_of_the_same_beam() -> None:
    dec = ScriptedDecoder(hold=True)
    engine = InferenceEngine(dec, max_batch_size=3).start()
    engine.submit("x", RequestKind.FINAL, audio(), opts("blocker"))
    assert dec.started.wait(2)
    fs = [engine.submit(s, RequestKind.FINAL, audio(), opts(s, beam=b))
          for s, b in [("a", 1), ("b", 5), ("c", 1), ("d", 1), ("e", 1)]]
    dec.gate.set()
    for f in fs:
        f.result(5)
    assert dec.calls[1] == ["a", "c", "d"] and dec.calls[2] == ["b"] and dec.calls[3] == ["e"]
    engine.close()


def test_streams_are_served_fairly_under_load() -> None:
    """Four streams each keep an interim pending; every stream gets decodes."""
    dec = ScriptedDecoder(delay=0.01)
    engine = InferenceEngine(dec, clock=dec.clock).start()
    served = dict.fromkeys("abcd", 0)
    for _ in range(30):
        fs = {s: engine.submit(s, RequestKind.INTERIM, audio(), opts(s)) for s in "abcd"}
        for s, f in fs.items():
            try:
                f.result(5)
                served[s] += 1
            except Superseded:
                pass
    assert min(served.values()) >= 20, served
    engine.close()


def test_finals_survive_overload() -> None:
    dec = ScriptedDecoder(delay=0.002)
    engine = InferenceEngine(dec, interim_max_wait_s=0.01, clock=dec.clock).start()
    finals = [engine.submit(f"s{i % 8}", RequestKind.FINAL, audio(), opts(f"f{i}"))
              for i in range(200)]
    for i in range(400):
        engine.submit(f"s{i % 8}", RequestKind.INTERIM, audio(), opts("i"))
    assert [f.result(10).text for f in finals] == [f"f{i}" for i in range(200)]
    engine.close()


def test_async_decode_and_closed_engine() -> None:
    engine = InferenceEngine(ScriptedDecoder()).start()

    async def go() -> str:
        return (await engine.decode("a", RequestKind.FINAL, audio(), opts("ok"))).text

    assert asyncio.run(go()) == "ok"
    engine.close()
    with pytest.raises(EngineClosedError):
        engine.submit("a", RequestKind.FINAL, audio(), opts("late"))


def test_a_failing_decoder_fails_the_requests_not_the_engine() -> None:
    class Flaky(ScriptedDecoder):
        def decode_batch(self, requests):  # type: ignore[no-untyped-def]
            if requests[0][1].prompt == "boom":
                raise RuntimeError("device lost")
            return super().decode_batch(requests)

    engine = InferenceEngine(Flaky()).start()
    with pytest.raises(RuntimeError):
        engine.submit("a", RequestKind.FINAL, audio(), opts("boom")).result(5)
    assert engine.submit("a", RequestKind.FINAL, audio(), opts("fine")).result(5).text == "fine"
    engine.close()


def test_finals_lose_their_beam_when_other_finals_wait() -> None:
    class Beams(ScriptedDecoder):
        def decode_batch(self, requests):  # type: ignore[no-untyped-def]
            self.beams = getattr(self, "beams", []) + [o.beam_size for _, o in requests]
            return super().decode_batch(requests)

    dec = Beams(hold=True)
    engine = InferenceEngine(dec).start()
    engine.submit("x", RequestKind.INTERIM, audio(), opts("blocker"))
    assert dec.started.wait(2)
    a = engine.submit("a", RequestKind.FINAL, audio(), opts("a", beam=5))
    b = engine.submit("b", RequestKind.FINAL, audio(), opts("b", beam=5))
    dec.gate.set()
    a.result(5), b.result(5)
    assert dec.beams == [1, 1, 5]  # "a" waited with "b" behind it; "b" was alone
    assert engine.stats().degraded_finals == 1
    engine.close()


def test_interims_thin_out_as_more_streams_speak() -> None:
    dec = ScriptedDecoder()
    engine = InferenceEngine(dec, full_rate_streams=2, clock=dec.clock).start()
    assert engine.interim_spacing() == 1.0
    for sid in ("a", "b"):
        engine.submit(sid, RequestKind.INTERIM, audio(), opts(sid)).result(5)
    assert engine.interim_spacing() == 1.0  # two speakers: full rate
    for sid in ("c", "d"):
        engine.submit(sid, RequestKind.INTERIM, audio(), opts(sid)).result(5)
    four = engine.interim_spacing()
    assert four > 2.0  # four speakers: interims more than twice as sparse
    engine.forget("d")
    assert 1.0 < engine.interim_spacing() < four
    dec.clock.advance(10.0)  # nobody spoke for a while
    assert engine.interim_spacing() == 1.0
    engine.close()
