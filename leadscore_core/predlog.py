"""Append-and-seal JSON Lines files: the prediction log, and the webhook spools.

:class:`Spool` is the one writer behind both. A background thread appends lines to a file
named ``<prefix>-<stamp>-<host>-<pid>-<seq>.jsonl.open`` and seals it, by an atomic rename to
``.jsonl`` (into the same folder, or into another folder of the same file system such as an
inbox), when it holds ``max_records`` lines, ``max_bytes`` bytes, or its first line is
``max_age_seconds`` old, and when the writer closes. A reader therefore sees either nothing or
the whole file. A ``durable`` spool fsyncs each batch (and the folders a new or sealed name
is written to) before it says a record is written, so a caller can acknowledge it; with
``sync_on_seal`` a file is fsync'd once, before it is sealed (for a caller that keeps its
records durable elsewhere until then, as the webhook ledger does).

The prediction log (:class:`PredictionLogWriter`): the API writes it and its files land
through an inbox like any export (``raw/predictions``, one partition per sealed file), so the
API never touches the warehouse file. Layout::

    <data>/predictions/predictions-20260301T101500-host-4242-0001.jsonl.open   being written
    <data>/inbox/predictions/predictions-20260301T091500-host-4242-0000.jsonl  sealed: lands

One file per writer (the pid is in the name), so several API workers never share a file. A
file left open by a process that died is sealed by :func:`seal_abandoned`.

Each line of the prediction log is one entry::

    {"id": "...", "time": "2026-03-01T10:15:00.123456+00:00", "model": "lead_conversion",
     "version": "3", "endpoint": "/v1/leads/score", "inputs": {...}, "outputs": {...}}

Each entry carries its own id and time: a prediction is the same prediction whichever file
lands it, and however often (the drift window counts it once, by when it was served).
:func:`entry_problem` is the format's check, shared with the ingest reader.

No Dagster imports: the API uses this module.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

OPEN_SUFFIX = ".jsonl.open"
CLOSED_SUFFIX = ".jsonl"
REQUIRED_FIELDS = ("time", "model", "version", "endpoint", "inputs", "outputs")
_STOP = object()
log = logging.getLogger("leadscore.spool")


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays (model outputs) and datetimes in inputs
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class _Entry(msgspec.Struct):
    """One line of the log (encoded in this field order)."""

    id: str
    time: str
    model: str
    version: str
    endpoint: str
    inputs: Any
    outputs: Any


@dataclass
class SpoolJob:
    """One item handed to a :class:`Spool`: a payload its ``render`` turns into lines, and
    what to call (on the writer thread) once those lines are written."""

    payload: Any
    done: Callable[[Any, BaseException | None], None] | None = None
    result: Any = None  # set by the spool's hooks, passed to ``done``
    lines: list[bytes] = field(default_factory=list)
    file: str = ""  # name of the file (without its suffix) the lines went to
    first_line: int = 0  # 1-based line number of the first line in that file


class Spool:
    """Append-only JSON Lines writer for one process, sealing its files (see the module doc).

    ``submit`` puts a job on an in-memory queue (microseconds, never blocks); a background
    thread writes what is queued every ``flush_interval`` seconds or ``max_batch`` records,
    in one write per batch. With ``durable=True`` each batch is fsync'd before the jobs' ``done``
    callbacks run, so a job whose ``done`` saw no error is on disk; without it, lines reach
    the operating system (they survive the process, not the machine).

    Subclasses say what a job becomes: ``render`` (the lines of each job), and optionally
    ``begin`` / ``commit`` / ``abort`` around each batch (e.g. a ledger of what was written,
    committed only once the lines are durable). A file is never sealed between ``begin`` and
    ``commit`` of a batch, so a sealed file only holds committed batches.

    If the queue is full (the disk cannot keep up), ``submit`` returns False and counts the
    records in ``dropped``.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        prefix: str,
        sealed_dir: Path | str | None = None,
        durable: bool = False,
        sync_on_seal: bool = False,
        flush_interval: float = 0.25,
        max_batch: int = 1_000,
        max_records: int | None = None,
        max_bytes: int = 32 * 1024 * 1024,
        max_age_seconds: float = 3_600.0,
        max_queue: int = 100_000,
        thread_name: str = "spool",
    ) -> None:
        if max_records is not None and max_records < 1:
            raise ValueError(f"max_records must be at least 1, not {max_records}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sealed_dir = Path(sealed_dir) if sealed_dir is not None else self.directory
        self.sealed_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.durable = durable
        self.sync_on_seal = durable or sync_on_seal
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self.written = 0
        self.dropped = 0
        self.closed_files: list[Path] = []
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._pid = os.getpid()
        self._host = host_name()
        self._file = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._size = 0
        self._records = 0
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- what a job becomes (subclasses) ----------------------------------------------------

    def weight(self, payload: Any) -> int:
        """Records a payload stands for (bounds a batch at ``max_batch``)."""
        return 1

    def render(self, jobs: list[SpoolJob]) -> None:
        """Fill each job's ``lines`` (encoded JSON, no trailing newline)."""
        for job in jobs:
            job.lines = [job.payload]

    def begin(self, jobs: list[SpoolJob]) -> list[SpoolJob]:
        """Before a batch is written: the jobs to write (others get their ``result`` set)."""
        return jobs

    def commit(self, jobs: list[SpoolJob]) -> None:
        """After the batch's lines are written (and fsync'd when durable)."""

    def abort(self, jobs: list[SpoolJob], error: BaseException) -> None:
        """The batch could not be written; ``begin``'s effects are to be undone."""

    def sealed(self, path: Path) -> None:
        """After a file was sealed (renamed to ``path``)."""

    # -- the caller's side ---------------------------------------------------------------------

    def submit(self, payload: Any, done: Callable[[Any, BaseException | None], None] | None
               = None) -> bool:
        """Queue one job; False (and the records counted in ``dropped``) when the spool is
        closed or its queue is full. ``payload`` must not be changed afterwards."""
        if self._closed:  # a request finishing during shutdown must not fail for this
            self.dropped += self.weight(payload)
            return False
        try:
            self._queue.put_nowait(SpoolJob(payload, done))
        except queue.Full:
            self.dropped += self.weight(payload)
            return False
        return True

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far is written to disk (for tests and shutdown)."""
        if self._closed:
            return
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            raise TimeoutError(f"{self.prefix} spool not flushed within {timeout} s")

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, seal the open file and stop."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:  # a forked child does not own the parent's file
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        atexit.unregister(self.close)
        if self._error is not None:
            raise RuntimeError(
                f"{self.prefix} spool writer failed: {self._error}") from self._error

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def open_path(self) -> Path | None:
        return self._path

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced by close(); the API keeps serving meanwhile
            self._error = exc
        finally:
            self._seal()

    def _wait(self) -> float:
        if self._file is None:
            return self.flush_interval
        left = self._opened_at + self.max_age_seconds - time.time()
        return max(0.0, min(self.flush_interval, left))

    def _loop(self) -> None:
        while True:
            jobs: list[SpoolJob] = []
            records = 0
            waiters: list[threading.Event] = []
            stop = False
            try:
                item = self._queue.get(timeout=self._wait())
            except queue.Empty:
                item = None
            while item is not None:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    jobs.append(item)
                    records += self.weight(item.payload)
                if records >= self.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if jobs:
                self._write_batch(jobs)
            if self._file is not None and (
                self._size >= self.max_bytes
                or time.time() - self._opened_at >= self.max_age_seconds
            ):
                self._seal()
            for waiter in waiters:
                waiter.set()
            if stop:
                return

    def _write_batch(self, jobs: list[SpoolJob]) -> None:
        written: list[SpoolJob] = []
        try:
            self.render(jobs)
            written = self.begin(jobs)
            full = self._write(written)
            self.commit(written)
        except Exception as exc:
            # what this batch wrote is cut off again so the file stays whole, and the
            # callers hear of the failure; the next batch starts a new file
            self._discard_partial()
            with contextlib.suppress(Exception):
                self.abort(written, exc)
            for job in jobs:
                _call(job, exc)
            return
        for path in full:
            self._seal_path(path)
        self.written += sum(len(j.lines) for j in written)
        for job in jobs:
            _call(job, None)

    def _write(self, jobs: list[SpoolJob]) -> list[Path]:
        """Append the jobs' lines, moving to a new file whenever one is full; returns the
        full files (sealed by the caller once the batch is committed)."""
        full: list[Path] = []
        chunk: list[bytes] = []
        self._batch_start = (self._path, self._size)
        for job in jobs:
            if not job.lines:
                continue
            if self._file is None:
                self._open()
            if self.max_records is not None and self._records + len(chunk) >= self.max_records:
                self._append(chunk)
                chunk = []
                full.append(self._detach())
                self._open()
            job.file = self._path.name[: -len(OPEN_SUFFIX)]
            job.first_line = self._records + len(chunk) + 1
            chunk.extend(job.lines)
        if chunk:
            self._append(chunk)
        return full

    def _append(self, lines: list[bytes]) -> None:
        if not lines:
            return
        data = b"\n".join(lines) + b"\n"
        self._file.write(data)
        self._file.flush()
        if self.durable:
            os.fsync(self._file.fileno())
        self._size += len(data)
        self._records += len(lines)

    def _detach(self) -> Path:
        """Close the current file without sealing it yet."""
        path = self._path
        if self.sync_on_seal and not self.durable:  # durable: every batch is fsync'd already
            os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self._path = None
        return path

    def _discard_partial(self) -> None:
        path, size = getattr(self, "_batch_start", (None, 0))
        if self._file is not None and self._path == path:
            with contextlib.suppress(OSError):
                self._file.truncate(size)
                self._file.flush()
            self._size = size
        with contextlib.suppress(Exception):
            self._seal()

    def _open(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        while True:
            # The sequence is shared by every writer of this process, so two writers never
            # pick one name; a name an earlier process with this pid left (open or closed,
            # say after a restart within the second) is skipped rather than overwritten.
            seq = next(_FILE_SEQ)
            name = f"{self.prefix}-{stamp}-{self._host}-{self._pid}-{seq:04d}{OPEN_SUFFIX}"
            path = self.directory / name
            if (self.sealed_dir / _closed_name(path).name).exists():
                continue
            try:
                self._file = open(path, "xb")  # noqa: SIM115 - kept open across batches
                break
            except FileExistsError:
                continue
        self._path = path
        if self.durable:
            fsync_dir(self.directory)
        self._opened_at = time.time()
        self._size = 0
        self._records = 0

    def _seal(self) -> None:
        if self._file is None:
            return
        self._seal_path(self._detach())

    def _seal_path(self, path: Path) -> None:
        closed = self.sealed_dir / _closed_name(path).name
        os.replace(path, closed)
        if self.sync_on_seal:
            fsync_dir(self.sealed_dir)
            if self.sealed_dir != self.directory:
                fsync_dir(self.directory)
        self.closed_files.append(closed)
        self.sealed(closed)


def _call(job: SpoolJob, error: BaseException | None) -> None:
    if job.done is not None:
        try:
            job.done(job.result, error)
        except Exception:  # a caller's callback never stops the writer
            log.exception("spool callback failed")


def writer_of(name: str) -> tuple[str, int] | None:
    """(host, pid) of the writer that named a spool file, from the file name."""
    parts = name.split(".", 1)[0].rsplit("-", 4)
    try:
        return parts[2], int(parts[3])
    except (IndexError, ValueError):
        return None


def writer_gone(name: str) -> bool:
    """True when the file's writer is a process of this host that is no longer running (or
    this very process, which cannot have a file open before its first write)."""
    writer = writer_of(name)
    if writer is None or writer[0] != host_name():
        return False
    return writer[1] == os.getpid() or not _pid_alive(writer[1])


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def host_name() -> str:
    """This machine's name as written in spool file names (no dots, no dashes)."""
    return socket.gethostname().split(".")[0].replace("-", "_") or "host"


class PredictionLogWriter(Spool):
    """Buffered, append-only writer of the prediction log for one process.

    ``log`` and ``log_many`` only put the request's entries, as one item, on an in-memory
    queue (a few microseconds, never blocks the request); the writer thread encodes and
    writes them every ``flush_interval`` seconds or ``max_batch`` entries, and rotates the
    file when it reaches ``max_bytes`` or ``max_age_seconds``. ``close`` writes everything
    still queued and seals the file, so a clean shutdown loses nothing. Create one writer per
    process (e.g. in the API's lifespan, after worker processes are forked).

    If the queue is ever full (the disk cannot keep up), ``log`` drops the entry rather than
    slow the request down, and counts it in ``dropped``.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        flush_interval: float = 0.25,
        max_batch: int = 1_000,
        max_bytes: int = 32 * 1024 * 1024,
        max_age_seconds: float = 3_600.0,
        max_queue: int = 100_000,
        inbox: Path | str | None = None,
    ) -> None:
        """``inbox``: where sealed files go (``settings.inbox("predictions")`` in the API);
        default: beside the open ones."""
        # msgspec: several times faster than json, which matters on a thread sharing the GIL
        # with the request handlers
        self._encoder = msgspec.json.Encoder(enc_hook=_json_default)
        # Entry ids: this writer's random prefix and a counter, unique across processes and
        # restarts without a random draw per entry
        self._id_prefix = uuid.uuid4().hex[:16]
        self._entries = 0
        super().__init__(directory, prefix="predictions", sealed_dir=inbox,
                         flush_interval=flush_interval,
                         max_batch=max_batch, max_bytes=max_bytes,
                         max_age_seconds=max_age_seconds, max_queue=max_queue,
                         thread_name="prediction-log")

    # -- the request side ------------------------------------------------------------------

    def log(
        self,
        model: str,
        version: str | int,
        endpoint: str,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
    ) -> None:
        """Queue one prediction; the dicts must not be changed by the caller afterwards."""
        self.log_many(model, version, endpoint, [(inputs, outputs)])

    def log_many(self, model: str, version: str | int, endpoint: str,
                 rows: Iterable[tuple[Any, Mapping[str, Any]]]) -> None:
        """Queue a request's predictions: ``rows`` of (inputs, outputs), all served now.

        ``inputs`` is a mapping or a ``msgspec.Struct`` (written as its JSON object); neither
        may be changed by the caller afterwards.
        """
        rows = rows if isinstance(rows, list) else list(rows)
        self.log_requests([(time.time(), model, str(version), endpoint, rows)])

    def log_requests(self, requests: list[tuple[float, str, str, str, list]]) -> None:
        """Queue several requests at once, each ``(time, model, version, endpoint, rows)``:
        one hand-over (and at most one wake-up of the writer) for all of them."""
        if requests:
            self.submit(requests)

    # -- the writer thread -----------------------------------------------------------------

    def weight(self, payload: Any) -> int:
        return sum(len(r[-1]) for r in payload)

    def render(self, jobs: list[SpoolJob]) -> None:
        encode, prefix, n = self._encoder.encode, self._id_prefix, self._entries
        for job in jobs:
            lines = []
            for ts, model, version, endpoint, rows in job.payload:
                stamp = datetime.fromtimestamp(ts, UTC).isoformat()
                for inputs, outputs in rows:
                    lines.append(encode(_Entry(f"{prefix}{n:08x}", stamp, model, version,
                                               endpoint, inputs, outputs)))
                    n += 1
            job.lines = lines
        self._entries = n


_FILE_SEQ = itertools.count()


def _closed_name(open_path: Path) -> Path:
    return open_path.with_name(open_path.name[: -len(OPEN_SUFFIX)] + CLOSED_SUFFIX)


# -- the entry format, and crash recovery ---------------------------------------------------


def entry_problem(entry: Any) -> str | None:
    """Why a decoded line is not a prediction-log entry, or None when it is one."""
    if not isinstance(entry, dict):
        return "not a JSON object"
    missing = [f for f in REQUIRED_FIELDS if f not in entry]
    if missing:
        return f"missing field(s): {', '.join(missing)}"
    for name in ("inputs", "outputs"):
        if not isinstance(entry[name], dict):
            return f"field {name!r} is not an object"
    try:
        datetime.fromisoformat(str(entry["time"]))
    except ValueError:
        return f"field 'time' is not an ISO timestamp: {entry['time']!r}"
    return None


def seal_abandoned(directory: Path | str, min_age_seconds: float = 300.0, *,
                   inbox: Path | str | None = None) -> list[Path]:
    """Seal ``.open`` files whose writer process is gone (a crash) so they can land: into
    ``inbox`` (default: beside them).

    A file is abandoned when its pid is not running on this host and it has not been
    written for ``min_age_seconds``; files of other hosts are sealed on age alone.
    """
    directory = Path(directory)
    host = host_name()
    sealed = []
    for path in sorted(directory.glob(f"*{OPEN_SUFFIX}")):
        writer = writer_of(path.name)
        if writer is None:
            continue
        if time.time() - path.stat().st_mtime < min_age_seconds:
            continue
        if writer[0] == host and _pid_alive(writer[1]):
            continue
        closed = (Path(inbox) if inbox is not None else path.parent) / _closed_name(path).name
        os.replace(path, closed)
        sealed.append(closed)
    return sealed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
