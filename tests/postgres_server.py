"""A real PostgreSQL server for the tests: Debian's binaries, a temporary folder, a loopback port.

``initdb`` makes a cluster in a fresh folder under the system's temporary directory and
``pg_ctl`` starts it on a free port of 127.0.0.1 (no Unix socket, never the system service).
PostgreSQL refuses to run as root: when the tests run as root, the cluster belongs to the
ordinary user ``nobody`` and every PostgreSQL program runs as that user. The server is stopped
and its folder removed at the end of the session; each wait has a deadline.

Use the session fixture ``postgres`` (``from postgres_server import postgres`` in a test
module; every module that imports it shares one server) or ``PostgresServer`` directly;
``new_database()`` gives each test a database of its own.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_SECONDS = 60
"""How long ``pg_ctl`` may wait for the server to accept connections (or to stop)."""
COMMAND_SECONDS = 120
"""How long any other PostgreSQL program may run."""
SERVICE_USER = "nobody"
"""Who runs the server when the tests run as root (initdb refuses root)."""


def postgres_bindir() -> Path | None:
    """The folder of Debian's PostgreSQL server programs, or None if PostgreSQL is missing."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30
            )
            candidates.append(done.stdout.strip())
    # Debian keeps the server programs out of PATH, one folder per major version: newest first.
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """A running cluster: its folder, port and superuser password."""

    bindir: Path
    folder: Path
    port: int = 0
    password: str = ""
    user: str = "postgres"
    _databases: int = 0

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def _run_as(self) -> dict:
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam(SERVICE_USER)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _program(self, name: str, *args: str, timeout: float = COMMAND_SECONDS):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PGPASSWORD": self.password,
            "HOME": str(self.folder),
        }
        done = subprocess.run(
            [str(self.bindir / name), *args],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            **self._run_as(),
        )
        if done.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    @classmethod
    def start(cls, bindir: Path) -> PostgresServer:
        """initdb and start a cluster in a new temporary folder."""
        folder = Path(tempfile.mkdtemp(prefix="classgrade-pg-"))
        server = cls(bindir=bindir, folder=folder, password=secrets.token_hex(16))
        try:
            server._init()
            for attempt in range(3):
                server.port = _free_port()
                try:
                    server._program(
                        "pg_ctl",
                        "start",
                        "-w",
                        "-t",
                        str(START_SECONDS),
                        "-D",
                        str(server.data_dir),
                        "-l",
                        str(folder / "server.log"),
                        "-o",
                        f"-p {server.port} -c listen_addresses=127.0.0.1 "
                        "-c unix_socket_directories='' -c max_connections=200 -c fsync=off",
                        timeout=START_SECONDS + 30,
                    )
                    return server
                except RuntimeError:
                    if attempt == 2:  # another process may have taken the port meanwhile
                        raise
        except BaseException:
            server._remove()
            raise
        raise AssertionError("unreachable")

    def _init(self) -> None:
        owner = self._run_as()
        if owner:
            os.chown(self.folder, owner["user"], owner["group"])
        os.chmod(self.folder, 0o700)
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n")
        if owner:
            os.chown(pwfile, owner["user"], owner["group"])
        self._program(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--pwfile",
            str(pwfile),
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        )
        pwfile.unlink()

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        """The address of ``database`` (with the password, for the tests' own use)."""
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new empty database's name."""
        import psycopg

        self._databases += 1
        name = f"course{self._databases}_{secrets.token_hex(4)}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=30) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def stop(self) -> None:
        """Stop the server (fast shutdown, with a deadline) and remove its folder."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._program(
                    "pg_ctl",
                    "stop",
                    "-w",
                    "-t",
                    str(START_SECONDS),
                    "-m",
                    "fast",
                    "-D",
                    str(self.data_dir),
                    timeout=START_SECONDS + 30,
                )
        finally:
            self._remove()

    def _remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


_SHARED: dict[str, PostgresServer] = {}
_USERS: list[str] = []


@pytest.fixture(scope="session")
def postgres(request) -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session (Debian's postgresql must be installed).

    pytest makes a session fixture imported into several test modules once per module: they
    all get the one server started here on first use, stopped when the last of them ends.
    """
    if "server" not in _SHARED:
        bindir = postgres_bindir()
        if bindir is None:
            pytest.fail("PostgreSQL is not installed: run scripts/install-debian-packages.sh")
        _SHARED["server"] = PostgresServer.start(bindir)
    _USERS.append(request.node.nodeid)
    try:
        yield _SHARED["server"]
    finally:
        _USERS.pop()
        if not _USERS:
            _SHARED.pop("server").stop()
