"""A local LiveKit server for the demo, the tests and the benchmarks.

``livekit-server`` v1.13.5 is built once per machine with ``go install`` into the cache
(``~/.cache/greffier/bin``; never into the clone), configured for loopback only, started in
the background, checked through its health endpoint and stopped by PID. No Redis: a single node
routes and dispatches agents by itself. Nothing here imports livekit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from greffier.core.config import DEV_API_KEY, DEV_API_SECRET, default_cache_dir
from greffier.core.errors import ConfigurationError, GreffierError, ServerUnreachableError
from greffier.core.log import get_logger

logger = get_logger("livekit.server")

LIVEKIT_VERSION = "v1.13.5"
_MODULE = "github.com/livekit/livekit-server/cmd/server"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Where and how the local server listens."""

    port: int = 7880
    tcp_port: int = 7881
    udp_port: int = 7882
    api_key: str = DEV_API_KEY
    api_secret: str = DEV_API_SECRET
    cache_dir: Path = default_cache_dir()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def binary(self) -> Path:
        return self.cache_dir / "bin" / f"livekit-server-{LIVEKIT_VERSION.lstrip('v')}"

    @property
    def run_dir(self) -> Path:
        return self.cache_dir / "run"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"livekit-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"livekit-{self.port}.log"

    @property
    def config_file(self) -> Path:
        return self.run_dir / f"livekit-{self.port}.yaml"


def render_config(cfg: ServerConfig) -> str:
    """The server's YAML configuration: loopback only, no public STUN, one UDP port."""
    if len(cfg.api_secret) < 32:
        raise ConfigurationError("the LiveKit API secret must have at least 32 characters")
    return (
        f"port: {cfg.port}\n"
        "bind_addresses:\n  - 127.0.0.1\n"
        "rtc:\n"
        f"  tcp_port: {cfg.tcp_port}\n"
        f"  udp_port: {cfg.udp_port}\n"
        "  node_ip: 127.0.0.1\n"
        "  use_external_ip: false\n"
        "  enable_loopback_candidate: true\n"
        "  stun_servers:\n    - 127.0.0.1:3478\n"
        "keys:\n"
        f"  {cfg.api_key}: {cfg.api_secret}\n"
        "logging:\n  level: info\n"
    )


def install(cfg: ServerConfig | None = None) -> Path:
    """Build livekit-server with ``go install`` into the cache, unless it is already there."""
    cfg = cfg or ServerConfig()
    if cfg.binary.is_file() and os.access(cfg.binary, os.X_OK):
        return cfg.binary
    go = shutil.which("go")
    if go is None:
        raise GreffierError(
            "Go is needed to build livekit-server and was not found",
            hint="install Go >= 1.26 (https://go.dev/dl/) and put it on PATH",
        )
    cfg.binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="greffier-go-") as gobin:
        env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": gobin}
        logger.info("building livekit-server %s with go install (minutes, once)", LIVEKIT_VERSION)
        proc = subprocess.run(
            [go, "install", "-trimpath", "-ldflags=-s -w", f"{_MODULE}@{LIVEKIT_VERSION}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise GreffierError(
                f"go install of livekit-server failed: {proc.stderr.strip()[-2000:]}",
                hint="check that the Go module proxy is reachable and Go is >= 1.26",
            )
        built = Path(gobin) / "server"
        tmp = cfg.binary.with_suffix(".tmp")
        shutil.copy2(built, tmp)
        tmp.chmod(0o755)
        tmp.replace(cfg.binary)
    return cfg.binary


def is_healthy(http_url: str, timeout: float = 1.0) -> bool:
    """True when ``GET /`` answers ``OK``."""
    try:
        with urllib.request.urlopen(http_url + "/", timeout=timeout) as resp:  # noqa: S310
            return resp.status == 200 and resp.read().strip() == b"OK"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_healthy(http_url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_healthy(http_url):
            return True
        time.sleep(0.2)
    return False


def _read_pid(cfg: ServerConfig) -> int | None:
    try:
        pid = int(cfg.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def start(cfg: ServerConfig | None = None, *, timeout: float = 30.0) -> bool:
    """Start the server in the background unless one already answers on the port.

    Returns True when this call started it (and :func:`stop` should stop it).
    """
    cfg = cfg or ServerConfig()
    if is_healthy(cfg.http_url):
        logger.info("a LiveKit server already answers on %s", cfg.http_url)
        return False
    binary = install(cfg)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    cfg.config_file.write_text(render_config(cfg))
    cfg.config_file.chmod(0o600)
    log = cfg.log_file.open("ab")
    proc = subprocess.Popen(  # noqa: S603
        [str(binary), "--config", str(cfg.config_file)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    cfg.pid_file.write_text(str(proc.pid))
    if not wait_healthy(cfg.http_url, timeout):
        code = proc.poll()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        tail = cfg.log_file.read_text(errors="replace")[-1500:]
        raise ServerUnreachableError(
            f"livekit-server did not become healthy in {timeout:.0f} s"
            f"{f' (exit code {code})' if code is not None else ''}: {tail}",
            hint=f"see {cfg.log_file}; is port {cfg.port} free?",
        )
    logger.info("LiveKit server %s up on %s (pid %d)", LIVEKIT_VERSION, cfg.url, proc.pid)
    return True


def stop(cfg: ServerConfig | None = None, *, timeout: float = 10.0) -> bool:
    """Stop the server started by :func:`start` (by its PID file). True if one was stopped."""
    cfg = cfg or ServerConfig()
    pid = _read_pid(cfg)
    if pid is None:
        cfg.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    cfg.pid_file.unlink(missing_ok=True)
    return True


def status(cfg: ServerConfig | None = None) -> str:
    """One line saying whether the server runs and answers."""
    cfg = cfg or ServerConfig()
    pid = _read_pid(cfg)
    healthy = is_healthy(cfg.http_url)
    installed = cfg.binary.is_file()
    return (
        f"livekit-server {LIVEKIT_VERSION}: {'installed' if installed else 'not installed'}"
        f" at {cfg.binary}; {'healthy' if healthy else 'not answering'} on {cfg.url}"
        f"{f' (pid {pid})' if pid else ''}"
    )
