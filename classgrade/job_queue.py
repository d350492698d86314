"""The grading queue in PostgreSQL: what crosses between the coordinator and the workers.

``python -m classgrade grade --db URL`` enqueues one procrastinate job per notebook and
``python -m classgrade worker --db URL`` runs them. Nothing but JSON and bytes crosses: a job's
arguments name its notebook, the assignment's released files, the grade cells' data files and
the hidden tests' packages by content hash (sha256); the bytes themselves sit once each in the
``blobs`` table. A worker answers with a result row (the job's JSON answer, as a local job
answers on its pipe); the coordinator checks that row as hostile data and stays the only writer
of nbgrader's gradebook.

Everything lives in the schema ``classgrade_queue`` of the given database (the gradebook's, as a
rule): nbgrader's own tables stay alone in ``public``, where it expects them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import procrastinate
import psycopg

from .gradebook import GradingSetupError
from .notebook_job import ExecJob
from .sandbox import Limits

SCHEMA = "classgrade_queue"
QUEUE = "classgrade"
TASK = "classgrade.grade_notebook"
MAX_ATTEMPTS = 3
"""How many workers may die holding one notebook before it fails (its learner not charged)."""
DEFAULT_LEASE_SECONDS = 30.0
"""A worker silent this long (no heartbeat) has lost its jobs: they go to another worker."""
CONNECT_SECONDS = 15
"""How long a connection to the database may take to open."""
MAX_PAYLOAD_FILES = 5000
"""The most files one job's folders may name (the course's own packages hold ~100)."""

_SCHEMA_LOCK = 0x636C617373677264  # "classgrd": serialises the schema's creation
_TABLES = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA}.blobs (
    hash text PRIMARY KEY,
    data bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.results (
    job_key text PRIMARY KEY,
    answer bytea NOT NULL,
    worker text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
"""


class QueueUnavailable(GradingSetupError):
    """The queue's database cannot be reached or used; the message holds no password."""


_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@|(password\s*=\s*)\S+", re.IGNORECASE)


def redact(text: object) -> str:
    """``text`` with any password of a connection string replaced by ``***``."""
    return _PASSWORD.sub(
        lambda m: f"{m.group(1)}***@" if m.group(1) else f"{m.group(2)}***", str(text)
    )


def conninfo(url: str) -> str:
    """A libpq connection string from ``url`` (SQLAlchemy's ``postgresql+psycopg://`` too)."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres+psycopg://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    if url.startswith(("postgresql://", "postgres://")) or "=" in url:
        return url
    raise QueueUnavailable(
        f"--db must name a PostgreSQL database (postgresql://user@host/db), not {redact(url)!r}"
    )


def is_postgres(db_url: str) -> bool:
    """Whether nbgrader's ``db_url`` is a PostgreSQL database."""
    return db_url.startswith(("postgresql", "postgres:", "postgres+"))


def connect(url: str, autocommit: bool = False) -> psycopg.Connection:
    """A connection to the queue's database, its search path the queue's schema."""
    try:
        return psycopg.connect(
            conninfo(url),
            connect_timeout=CONNECT_SECONDS,
            options=f"-c search_path={SCHEMA}",
            autocommit=autocommit,
        )
    except psycopg.Error as exc:
        raise QueueUnavailable(f"cannot reach the database: {redact(one_line(exc))}") from None


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def prepare(url: str) -> None:
    """Create the queue's schema, procrastinate's tables and ours, once per database."""
    with connect(url, autocommit=True) as conn:
        try:
            ready = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
                (f"{SCHEMA}.procrastinate_jobs", f"{SCHEMA}.results"),
            ).fetchone()
            if ready and ready[0]:
                return  # a worker's role needs no right to create anything
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                exists = conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.procrastinate_jobs",)
                ).fetchone()
                if not (exists and exists[0]):
                    schema = procrastinate.schema.SchemaManager.get_schema()
                    conn.execute(schema)  # no parameters: sent as is
                conn.execute(_TABLES)
        except psycopg.Error as exc:
            raise QueueUnavailable(
                f"cannot prepare the queue in the database: {redact(one_line(exc))}"
            ) from None


def app(url: str, max_size: int = 4) -> procrastinate.App:
    """A procrastinate app on the queue's database (open it before use)."""
    connector = procrastinate.SyncPsycopgConnector(
        conninfo=conninfo(url),
        kwargs={"options": f"-c search_path={SCHEMA}", "connect_timeout": CONNECT_SECONDS},
        min_size=1,
        max_size=max_size,
        timeout=CONNECT_SECONDS,
    )
    return procrastinate.App(connector=connector)


# -- content-addressed files ------------------------------------------------------------------


def digest(data: bytes) -> str:
    """The content hash that names ``data`` in the blobs table."""
    return hashlib.sha256(data).hexdigest()


def put_blobs(conn: psycopg.Connection, blobs: dict[str, bytes]) -> None:
    """Store ``blobs`` (hash -> bytes); those already there are left as they are."""
    if not blobs:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO blobs (hash, data) VALUES (%s, %s) ON CONFLICT (hash) DO NOTHING",
            list(blobs.items()),
        )


def get_blob(conn: psycopg.Connection, name: str) -> bytes:
    """The bytes named ``name``, checked against their hash."""
    row = conn.execute("SELECT data FROM blobs WHERE hash = %s", (name,)).fetchone()
    if row is None:
        raise QueueUnavailable(f"the queue has no file {name[:16]}… (was the queue emptied?)")
    data = bytes(row[0])
    if digest(data) != name:
        raise QueueUnavailable(f"the queue's file {name[:16]}… does not match its hash")
    return data


@dataclass
class Uploader:
    """The coordinator's side: turns an ExecJob's host folders into hashes, once per run."""

    conn: psycopg.Connection
    _trees: dict[str, list[list[str]]] = field(default_factory=dict)
    _stored: set[str] = field(default_factory=set)

    def _store(self, pending: dict[str, bytes]) -> None:
        fresh = {k: v for k, v in pending.items() if k not in self._stored}
        put_blobs(self.conn, fresh)
        self._stored.update(fresh)

    def file(self, path: str) -> str:
        """The hash of the file at ``path``, stored."""
        data = Path(path).read_bytes()
        name = digest(data)
        self._store({name: data})
        return name

    def tree(self, folder: str) -> list[list[str]]:
        """[hash, relative path] of each regular file under ``folder`` (cached per run)."""
        if folder not in self._trees:
            root = Path(folder)
            entries, pending = [], {}
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts:
                    data = path.read_bytes()
                    name = digest(data)
                    pending[name] = data
                    entries.append([name, path.relative_to(root).as_posix()])
            self._store(pending)
            self._trees[folder] = entries
        return self._trees[folder]

    def payload(self, job: ExecJob) -> dict:
        """The job's arguments: plain JSON, every file by its hash."""
        notebook = job.notebook_json.encode()
        notebook_hash = digest(notebook)
        self._store({notebook_hash: notebook})
        return {
            "key": job.key,
            "notebook": notebook_hash,
            "assignment_files": [[self.file(host), name] for host, name in job.assignment_files],
            "data_files": self.tree(job.data_dir),
            "import_files": self.tree(job.import_dir),
            "limits": job.limits.to_dict(),
            "sandboxed": job.sandboxed,
        }


def job_key(payload: dict, notebook_json: str) -> str:
    """A job's identity: the same notebook of the same learner, graded the same way.

    Cell ids do not count: nbformat makes up random ones for a notebook saved without them,
    so a rerun's rebuilt notebook differs from the last run's in its ids alone.
    """
    notebook = json.loads(notebook_json)
    for cell in notebook.get("cells", []):
        cell.pop("id", None)
    stable = {**payload, "notebook": digest(json.dumps(notebook, sort_keys=True).encode())}
    return digest(json.dumps(stable, sort_keys=True).encode())


# -- the worker's side -------------------------------------------------------------------------


def _relative(name: object) -> str:
    """``name`` if it is a plain relative path inside a folder; else the job is refused."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise ValueError("a file name in the job is not text")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("", ".", "..") for part in path.parts):
        raise ValueError(f"the job names a file outside its folder: {name[:100]!r}")
    return path.as_posix()


def _hash_name(name: object) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[0-9a-f]{64}", name):
        raise ValueError("the job names a file by something that is not a sha256 hash")
    return name


def files_of(entries: object) -> list[tuple[str, str]]:
    """The job's [hash, relative path] list, checked."""
    if not isinstance(entries, list) or len(entries) > MAX_PAYLOAD_FILES:
        raise ValueError("the job's file list is not a list of a bounded size")
    out = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 2:
            raise ValueError("the job's file list holds something other than [hash, name]")
        out.append((_hash_name(entry[0]), _relative(entry[1])))
    return out


def limits_of(data: object) -> Limits:
    """The job's limits, every field an int of the kind ``Limits`` has."""
    if not isinstance(data, dict):
        raise ValueError("the job's limits are not a mapping")
    known = Limits().to_dict()
    # type() rather than isinstance(): True is an int, and no limit.
    if set(data) != set(known) or not all(type(v) is int and v > 0 for v in data.values()):
        raise ValueError("the job's limits are not those classgrade knows")
    return Limits(**data)


@dataclass
class Materialiser:
    """The worker's side: the files a job names, written once each under ``root``."""

    conn: psycopg.Connection
    root: Path

    def blob_path(self, name: str) -> Path:
        """The local copy of the bytes named ``name``, fetched once."""
        path = self.root / "blobs" / name
        if not path.exists():
            path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(get_blob(self.conn, name))
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        return path

    def tree(self, entries: Iterable[tuple[str, str]]) -> Path:
        """A folder holding ``entries``, made once per distinct list."""
        entries = list(entries)
        folder = self.root / "trees" / digest(json.dumps(entries).encode())
        if folder.exists():
            return folder
        tmp = folder.with_name(f"{folder.name}.{os.getpid()}.{id(entries)}.tmp")
        tmp.mkdir(mode=0o755, parents=True)
        for name, rel in entries:
            dest = tmp / rel
            dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            dest.write_bytes(self.blob_path(name).read_bytes())
            os.chmod(dest, 0o644)
        try:
            os.rename(tmp, folder)
        except OSError:  # another job made it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
        return folder
