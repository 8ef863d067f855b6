"""A throwaway PostgreSQL cluster for tests: ``initdb`` and ``pg_ctl`` on a temporary folder,
trust authentication on loopback, fsync off. Needs Debian's ``postgresql`` package (the
binaries in ``/usr/lib/postgresql/<version>/bin``); as root, the cluster runs as the
``postgres`` user. ``GREFFIER_TEST_POSTGRES=0`` leaves PostgreSQL out of the store tests."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL_HINT = "install it with: apt-get install -y postgresql"


def enabled() -> bool:
    return os.environ.get("GREFFIER_TEST_POSTGRES", "1") != "0"


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        pytest.fail(f"PostgreSQL's {name} is not installed ({INSTALL_HINT}; or set "
                    "GREFFIER_TEST_POSTGRES=0 to test SQLite only)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """A running cluster; yields its server URL ``postgresql://greffier@127.0.0.1:<port>``."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="greffier-pg-"))
    if as_user:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()
    options = f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
    run = {"check": True, "capture_output": True, "timeout": 60}
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "greffier", "--auth=trust",
                        "-E", "UTF8", "--no-sync"], **run)  # type: ignore[call-overload]
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-w", "-l",
                        str(folder / "log"), "start"], **run)  # type: ignore[call-overload]
        yield f"postgresql://greffier@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def new_database(server: str) -> str:
    """A fresh, empty database on the cluster; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = server.replace("postgresql://", "postgresql://", 1) + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
