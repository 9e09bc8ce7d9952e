"""Shadow scoring: the challenger answers the same live requests, off the response path.

While the registry has a challenger for a served model (``leadscore_core.registry.
is_challenger``), the model watcher keeps it loaded beside the champion. Requests are answered
by the champion alone; what the champion answered is queued for the prediction log as always.
Every hand-over to the log (a few times a second) passes through :class:`ShadowScorer` first
when a challenger is loaded: a background thread scores the challenger on all the queued
requests of that model at once, adds its answer to each entry's outputs under ``challenger``
(version, probability and the tier, risk level or plan it would have given), and then hands
the entries to the log's writer. The champion's answer never waits for it: when the shadow
queue is full, entries go to the log with the champion's answer only (``skipped`` counts them).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from msgspec import Struct
from msgspec.structs import asdict

from api.models import ServedModel, ServedModels
from api.schemas import ID_FIELD
from leadscore_core.predlog import PredictionLogWriter
from leadscore_core.shadow import SHADOW_KEY, changed
from leadscore_core.tiers import tiers_of

log = logging.getLogger("leadscore.api")
_STOP = object()

# (time, model, version, endpoint, rows of (inputs, outputs)): one answered request
Request = tuple[float, str, str, str, list]


def _record(inputs: Struct | dict[str, Any]) -> dict[str, Any]:
    record = asdict(inputs) if isinstance(inputs, Struct) else dict(inputs)
    record.pop(ID_FIELD, None)
    return record


class ShadowScorer:
    """One background thread giving each queued request the challenger's answer, then
    handing the requests to the prediction log (see the module doc).

    ``tier_bounds(model, version)``: the published tier boundaries of a version, or None
    (then the challenger's own, from its bundle); ``risk``: churn probability -> risk level.
    """

    def __init__(self, models: ServedModels, writer: PredictionLogWriter, *,
                 tier_bounds: Callable[[str, str], np.ndarray | None],
                 risk: Callable[[float], str], max_queue: int = 64):
        self.models = models
        self.writer = writer
        self.tier_bounds = tier_bounds
        self.risk = risk
        self.scored = 0  # predictions the challenger answered
        self.changed = 0  # of which its tier, risk level or plan differs from the champion's
        self.skipped = 0  # predictions logged without the challenger (queue full, or failure)
        self._last_pair: tuple[Any, Any, bool] | None = None  # (encoder, encoder, same?)
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="shadow-scoring", daemon=True)
        self._thread.start()

    def active(self, burst: Sequence[Request]) -> bool:
        """Whether any request of the burst is for a model with a challenger loaded."""
        return any(self.models.challenger(r[1]) is not None for r in burst)

    def hand_over(self, burst: list[Request]) -> None:
        """From the event loop: to the shadow thread when a challenger is loaded for one of
        the burst's models, else (or when the thread is behind) straight to the log."""
        if not self.active(burst):
            self.writer.log_requests(burst)
            return
        try:
            self._queue.put_nowait(burst)
        except queue.Full:
            self.skipped += sum(len(r[-1]) for r in burst)
            self.writer.log_requests(burst)

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything handed over so far reached the log's writer."""
        done = threading.Event()
        self._queue.put(done, timeout=timeout)
        if not done.wait(timeout):
            raise TimeoutError(f"shadow scoring not flushed within {timeout} s")

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- the shadow thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self.score(item)
            except Exception:  # the log keeps the champion's answers whatever happens here
                log.exception("shadow scoring failed; logged with the champion's answers only")
                self.skipped += sum(len(r[-1]) for r in item)
            self.writer.log_requests(item)

    def score(self, burst: list[Request]) -> None:
        """Add the challenger's answer to the outputs of every row of the burst whose model
        has one loaded: one prediction per model for the whole burst."""
        by_model: dict[str, list[list]] = {}
        for _, model, version, _, rows in burst:
            challenger = self.models.challenger(model)
            if challenger is None or challenger.version == version or not rows:
                continue
            by_model.setdefault(model, []).append(rows)
        for model, requests in by_model.items():
            challenger = self.models.challenger(model)
            if challenger is None:
                continue
            X = np.concatenate([self.codes(challenger, rows) for rows in requests])
            answers = self.answers(challenger, X)
            outputs = (o for rows in requests for _, o in rows)
            for champion, answer in zip(outputs, answers, strict=True):
                champion[SHADOW_KEY] = answer
                self.changed += changed(champion, answer)
            self.scored += len(answers)

    def codes(self, challenger: ServedModel, rows: list) -> np.ndarray:
        """One request's rows as the challenger's encoder encodes them: the champion's codes
        as they are when its encoder is the same (``scoring.LogRows``), else encoded anew."""
        encoder = challenger.bundle.encoder
        codes = getattr(rows, "codes", None)
        if codes is not None and len(codes) == len(rows) and self._same(rows.encoder, encoder):
            return codes
        return encoder.transform_records([_record(inputs) for inputs, _ in rows])

    def _same(self, encoder: Any, other: Any) -> bool:
        """Whether two encoders give the same codes (same features, kinds and categories),
        remembered for the last pair asked about: champion and challenger change seldom."""
        if encoder is other:
            return True
        last = self._last_pair
        if last is None or last[0] is not encoder or last[1] is not other:
            last = self._last_pair = (encoder, other, encoder.specs == other.specs)
        return last[2]

    def answers(self, challenger: ServedModel, X: np.ndarray) -> list[dict[str, Any]]:
        """What the challenger would have answered on the encoded rows ``X``: probability
        and tier for leads, risk level for churn, the plan (and its probability) for
        plans."""
        version = challenger.version
        if challenger.task == "multiclass":
            proba = np.asarray(challenger.bundle.predict_proba(X), dtype=np.float64)
            proba = np.atleast_2d(proba)
            best = np.argmax(proba, axis=1)
            return [{"version": version, "plan": challenger.classes[int(b)],
                     "probability": float(proba[i, b])} for i, b in enumerate(best)]
        # as the challenger would answer them if it were served
        proba = challenger.answered_probabilities(X)
        proba = proba[:, -1] if proba.ndim == 2 else proba
        if challenger.name.endswith("churn"):
            return [{"version": version, "probability": float(p), "risk": self.risk(float(p))}
                    for p in proba]
        scores = np.rint(100.0 * proba).astype(int).tolist()
        bounds = self.tier_bounds(challenger.name, version)
        bounds = challenger.tier_bounds if bounds is None else bounds
        tiers = tiers_of(scores, bounds) if bounds is not None else [None] * len(scores)
        return [{"version": version, "probability": p, "score": s, "tier": t}
                for p, s, t in zip(proba.tolist(), scores, tiers, strict=True)]
