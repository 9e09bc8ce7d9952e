"""What a command-line run shows a person, and where everything else goes.

A command that runs Dagster (``leadscore land``, ``leadscore demo``) prints one line per
file or per finished step and a summary; Dagster's whole event stream (every event, every
traceback) and Python warnings go to ``<data>/logs/<command>-<UTC time>.log``, which the
summary names.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

# Dagster's console logger, silenced (the events still reach the instance and the log file).
QUIET_CONSOLE = {"console": {"config": {"log_level": "CRITICAL"}}}
LOGGER = "leadscore"
MLFLOW_PROGRESS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
FORMAT = "%(asctime)s %(levelname)s %(message)s"
STEP_LABEL = re.compile(r"__")


def step_label(step_key: str) -> str:
    """``clean__invoices`` -> ``clean/invoices`` (the asset key it materialises)."""
    return STEP_LABEL.sub("/", step_key)


class RunLog:
    """One log file per command; see the module doc."""

    def __init__(self, root: Path, command: str):
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.path = Path(root) / "logs" / f"{command}-{stamp}.log"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handler = logging.FileHandler(self.path, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter(FORMAT))

    @contextmanager
    def capturing(self) -> Iterator[RunLog]:
        """While the command runs, Dagster's and MLflow's loggers, Python warnings and
        anything written to stderr go to the log file; stdout stays the person's."""
        targets = [logging.getLogger(name) for name in ("dagster", "py.warnings", "alembic",
                                                        "mlflow")]
        saved = [(lg, lg.handlers[:], lg.propagate) for lg in targets]
        logging.captureWarnings(True)
        for lg in targets:
            lg.handlers = [self._handler]
            lg.propagate = False
        progress_bar = os.environ.get(MLFLOW_PROGRESS)
        os.environ[MLFLOW_PROGRESS] = "false"
        try:
            with warnings.catch_warnings(), self.path.open("a", encoding="utf-8",
                                                          buffering=1) as stderr, \
                    redirect_stderr(stderr):
                warnings.simplefilter("default")
                yield self
        finally:
            logging.captureWarnings(False)
            for lg, handlers, propagate in saved:
                lg.handlers, lg.propagate = handlers, propagate
            if progress_bar is None:
                os.environ.pop(MLFLOW_PROGRESS, None)
            else:
                os.environ[MLFLOW_PROGRESS] = progress_bar

    def write_events(self, result: dg.ExecuteInProcessResult) -> None:
        """Every event of a finished run, with the tracebacks of failures."""
        with self.path.open("a", encoding="utf-8") as out:
            for event in result.all_events:
                out.write(f"{event.event_type_value} {event.step_key or '-'} "
                          f"{event.message or ''}\n")
                if event.is_step_failure and event.step_failure_data.error:
                    out.write(event.step_failure_data.error.to_string() + "\n")

    def job_loggers(self, echo: Callable[[str], Any]) -> dict[str, dg.LoggerDefinition]:
        """Loggers for ``JobDefinition.with_logger_defs``: everything to the file, one line
        per finished step to ``echo``."""
        handler = self._handler

        class Progress(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                meta = getattr(record, "dagster_meta", None)
                event = meta.get("dagster_event") if isinstance(meta, dict) else None
                if event is None or not event.step_key:
                    return
                kind = event.event_type_value
                if kind == "STEP_SUCCESS":
                    took = re.search(r" in (\S+)\.$", record.getMessage())
                    echo(f"  done     {step_label(event.step_key)}"
                         + (f" ({took.group(1)})" if took else ""))
                elif kind == "STEP_FAILURE":
                    data = event.step_failure_data
                    why = (data.user_failure_data.description if data.user_failure_data
                           and data.user_failure_data.description
                           else data.error.message.strip().splitlines()[-1] if data.error
                           else "failed")
                    echo(f"  FAILED   {step_label(event.step_key)}: {why}")
                elif kind == "STEP_SKIPPED":
                    echo(f"  skipped  {step_label(event.step_key)} (an upstream step failed)")

        @dg.logger(description="leadscore CLI: progress to the console, all events to a file")
        def leadscore_logger(_init_context) -> logging.Logger:
            lg = logging.getLogger(LOGGER)
            lg.handlers = [handler, Progress()]
            lg.setLevel(logging.DEBUG)
            lg.propagate = False
            return lg

        return {LOGGER: leadscore_logger}

    @staticmethod
    def job_run_config() -> dict[str, Any]:
        return {"loggers": {LOGGER: {}}}
