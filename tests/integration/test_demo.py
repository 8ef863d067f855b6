"""The README's first command: ``greffier demo`` on its default recording, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_tells_the_two_voices_of_its_default_recording_apart(livekit) -> None:
    """The default recording is a two-person phone call on one track: the demo publishes it as
    a shared microphone, and the captions name two different voices."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "greffier", "demo"], capture_output=True, text=True,
        timeout=240, env=env, check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"demo exited {proc.returncode}:\n{out}\n{proc.stderr[-3000:]}"
    assert "shared microphone" in out
    live, _, minutes = out.partition("\nMinutes (")
    assert re.search(r"\] Phone call( \(\w+\))?: \w", live), f"no live caption:\n{out}"
    assert "WER of the finals" in live
    voices = set(re.findall(r"\] (Phone call \(\w+\)):", minutes))
    assert len(voices) >= 2, f"expected two voices told apart in the minutes:\n{out}"
