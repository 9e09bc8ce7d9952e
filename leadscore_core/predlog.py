"""The prediction log: every served prediction, appended to rotating JSON Lines files.

The API writes it and Dagster lands it into the warehouse, so the API never touches the
warehouse file. Layout under ``settings.predictions_dir``::

    predictions-20260301T101500-host-4242-0001.jsonl.open   being written: never read
    predictions-20260301T091500-host-4242-0000.jsonl        closed: ready to land
    landed/                                                 closed files already landed

One file per writer process (the pid is in the name), so several API workers never share a
file. A file is renamed from ``.jsonl.open`` to ``.jsonl`` when it is rotated (size or age)
or when the writer closes; the rename is atomic, so a reader sees either nothing or the whole
file. A file left open by a process that died is sealed by :func:`seal_abandoned`.

Each line is one entry::

    {"id": "...", "time": "2026-03-01T10:15:00.123456+00:00", "model": "lead_conversion",
     "version": "3", "endpoint": "/v1/leads/score", "inputs": {...}, "outputs": {...}}

No Dagster imports: the API uses this module.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

OPEN_SUFFIX = ".jsonl.open"
CLOSED_SUFFIX = ".jsonl"
LANDED_DIR = "landed"
REQUIRED_FIELDS = ("time", "model", "version", "endpoint", "inputs", "outputs")
_STOP = object()


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


class PredictionLogWriter:
    """Buffered, append-only writer of the prediction log for one process.

    ``log`` and ``log_many`` only put the request's entries, as one item, on an in-memory
    queue (a few microseconds, never blocks the request); a background thread writes the
    queue out every ``flush_interval`` seconds or ``max_batch`` entries, and rotates the file
    when it reaches ``max_bytes`` or ``max_age_seconds``. ``close`` writes everything still
    queued and seals the file, so a clean shutdown loses nothing. Create one writer per
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
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self.written = 0
        self.dropped = 0
        self.closed_files: list[Path] = []
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        # msgspec: several times faster than json, which matters on a thread sharing the GIL
        # with the request handlers
        self._encoder = msgspec.json.Encoder(enc_hook=_json_default)
        self._pid = os.getpid()
        self._host = socket.gethostname().split(".")[0].replace("-", "_") or "host"
        # Entry ids: this writer's random prefix and a counter, unique across processes and
        # restarts without a random draw per entry
        self._id_prefix = uuid.uuid4().hex[:16]
        self._entries = 0
        self._file = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._size = 0
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

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
        if not requests:
            return
        if self._closed:  # a request finishing during shutdown must not fail for this
            self.dropped += sum(len(r[-1]) for r in requests)
            return
        try:
            self._queue.put_nowait(requests)
        except queue.Full:
            self.dropped += sum(len(r[-1]) for r in requests)

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far is written to disk (for tests and shutdown)."""
        if self._closed:
            return
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            raise TimeoutError(f"prediction log not flushed within {timeout} s")

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, seal the open file (rename to ``.jsonl``) and stop."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:  # a forked child does not own the parent's file
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        atexit.unregister(self.close)
        if self._error is not None:
            raise RuntimeError(f"prediction log writer failed: {self._error}") from self._error

    def __enter__(self) -> PredictionLogWriter:
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

    def _loop(self) -> None:
        while True:
            batch: list[tuple] = []
            entries = 0
            waiters: list[threading.Event] = []
            stop = False
            try:
                item = self._queue.get(timeout=self.flush_interval)
            except queue.Empty:
                item = None
            while item is not None:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:  # a list of requests
                    batch.extend(item)
                    entries += sum(len(r[-1]) for r in item)
                if entries >= self.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if batch:
                self._write(batch)
            if self._file is not None and (
                self._size >= self.max_bytes
                or time.time() - self._opened_at >= self.max_age_seconds
            ):
                self._seal()
            for waiter in waiters:
                waiter.set()
            if stop:
                return

    def _write(self, batch: list[tuple]) -> None:
        if self._file is None:
            self._open()
        lines = []
        encode, prefix, n = self._encoder.encode, self._id_prefix, self._entries
        for ts, model, version, endpoint, rows in batch:
            stamp = datetime.fromtimestamp(ts, UTC).isoformat()
            for inputs, outputs in rows:
                lines.append(encode(_Entry(f"{prefix}{n:08x}", stamp, model, version, endpoint,
                                           inputs, outputs)))
                n += 1
        written = n - self._entries
        self._entries = n
        data = b"\n".join(lines) + b"\n"
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        self.written += written

    def _open(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        while True:
            # The sequence is shared by every writer of this process, so two writers never
            # pick one name; a name an earlier process with this pid left (open or closed,
            # say after a restart within the second) is skipped rather than overwritten.
            seq = next(_FILE_SEQ)
            name = f"predictions-{stamp}-{self._host}-{self._pid}-{seq:04d}{OPEN_SUFFIX}"
            self._path = self.directory / name
            if _closed_name(self._path).exists():
                continue
            try:
                self._file = open(self._path, "xb")  # noqa: SIM115 - kept open across batches
                break
            except FileExistsError:
                continue
        self._opened_at = time.time()
        self._size = 0

    def _seal(self) -> None:
        if self._file is None:
            return
        self._file.close()
        closed = _closed_name(self._path)
        os.replace(self._path, closed)
        self.closed_files.append(closed)
        self._file = None
        self._path = None


_FILE_SEQ = itertools.count()


def _closed_name(open_path: Path) -> Path:
    return open_path.with_name(open_path.name[: -len(OPEN_SUFFIX)] + CLOSED_SUFFIX)


# -- the landing side -------------------------------------------------------------------------


@dataclass(frozen=True)
class BadLine:
    """A line of a log file that is not a valid entry, kept aside with the reason."""

    file: str
    line: int
    reason: str
    text: str


def closed_files(directory: Path | str) -> list[Path]:
    """Closed log files ready to land, oldest first (never a file still being written)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(f"*{CLOSED_SUFFIX}") if p.is_file())


def read_log_file(path: Path | str) -> tuple[list[dict], list[BadLine]]:
    """Entries of one closed log file, and the lines that could not be read (with why).

    Entries get ``line`` (1-based line number in the file).
    """
    path = Path(path)
    if path.name.endswith(OPEN_SUFFIX):
        raise ValueError(f"{path.name} is still being written; only closed files are read")
    entries: list[dict] = []
    bad: list[BadLine] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            text = text.rstrip("\n")
            if not text.strip():
                continue
            try:
                entry = json.loads(text)
            except json.JSONDecodeError as exc:
                bad.append(BadLine(path.name, number, f"invalid JSON: {exc.msg}", text[:500]))
                continue
            problem = _entry_problem(entry)
            if problem:
                bad.append(BadLine(path.name, number, problem, text[:500]))
                continue
            entry["line"] = number
            entries.append(entry)
    return entries, bad


def _entry_problem(entry: Any) -> str | None:
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


def mark_landed(path: Path | str) -> Path:
    """Move a landed file into ``landed/`` (kept, never deleted)."""
    path = Path(path)
    target = path.parent / LANDED_DIR / path.name
    target.parent.mkdir(exist_ok=True)
    os.replace(path, target)
    return target


def seal_abandoned(directory: Path | str, min_age_seconds: float = 300.0) -> list[Path]:
    """Seal ``.open`` files whose writer process is gone (a crash) so they can land.

    A file is abandoned when its pid is not running on this host and it has not been
    written for ``min_age_seconds``; files of other hosts are sealed on age alone.
    """
    directory = Path(directory)
    host = socket.gethostname().split(".")[0].replace("-", "_") or "host"
    sealed = []
    for path in sorted(directory.glob(f"*{OPEN_SUFFIX}")):
        parts = path.name[: -len(OPEN_SUFFIX)].split("-")
        try:
            file_host, pid = parts[2], int(parts[3])
        except (IndexError, ValueError):
            continue
        if time.time() - path.stat().st_mtime < min_age_seconds:
            continue
        if file_host == host and _pid_alive(pid):
            continue
        closed = _closed_name(path)
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
