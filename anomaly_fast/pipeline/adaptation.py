"""Drift that adapts: an :class:`~anomaly_fast.pipeline.AnomalyPipeline`
replaces its model after a *lasting* change of the data, never after an
incident, and does so identically when a stream is replayed.

The rule is documented on :class:`AdaptationPolicy`; the pipeline's hook is
small (:meth:`Adapter.until_decision`, :meth:`Adapter.observe`, commit and
rollback).
"""

from __future__ import annotations

import copy
import math
import threading
import time
import warnings
from collections.abc import Callable
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.base import clone

from .._sklearn_compat import Interval, StrOptions, validate_parameter_constraints
from ..streaming.adwin import ADWIN

if TYPE_CHECKING:
    import os

    from .registry import ModelRegistry

__all__ = ["CHANGE_KINDS", "AdaptationPolicy", "fit_challenger"]

CHANGE_KINDS = ("initial", "incident", "change", "challenger", "promotion", "rejection")
_BASELINE, _WATCH, _SUSPECT, _COLLECT, _SHADOW = "baseline", "watch", "suspect", "collect", "shadow"
_CHECKPOINT_EVENTS = 4096  # events between checkpoints of the undo journal


class AdaptationPolicy:
    """When and how an :class:`~anomaly_fast.pipeline.AnomalyPipeline`
    replaces its model after a lasting change of the data, never after an
    incident (see Notes).

    Parameters
    ----------
    window : int >= 1, default=2000
        Events after a suspected change that a challenger is fitted on (at
        least ``persistence``).
    persistence : int >= 4, default=1000
        Events a suspected change must last, elevated in each of its four
        blocks, to count as lasting; ``persistence // 4`` is also the block
        of the watch phase.
    min_duration : float >= 0, default=0.0
        Seconds of event time the change must last as well.
    shadow : int >= 1, default=500
        Events scored by the champion and, afterwards, the challenger before
        the promotion decision.
    expected_rate : float in (0, 1) or "auto", default="auto"
        The normal alert rate; ``"auto"``: the champion's rate over the
        first ``window`` events (at least ``1 / window``).
    tolerance : float >= 1, default=2.0
        A rate is *elevated* above ``tolerance * expected_rate`` plus a 3
        sigma Poisson allowance, *near* the expected rate otherwise.
    min_entity_share : float in [0, 1], default=0.5
        Share of the span's entities that must have elevated rates for a
        change to be lasting.
    max_top_tier_share : float in [0, 1], default=0.5
        A change with more than this share of its alerts in the highest tier
        is an incident (1 turns the rule off).
    delta : float in (0, 1), default=0.002
        Confidence of the score ADWIN.
    registry : None, str, Path or ModelRegistry, default=None
        Where challengers are saved (with ``tags`` ``role``, ``champion``,
        ``training_window`` = ``{"start", "end", "events"}`` in event time).
    random_state : int, default=0
        Seed of challengers whose champion has no integer ``random_state``.
    on_change : callable, default=None
        Called with each list of new model-change dicts (after they are
        stored).

    Notes
    -----
    How it works (one cycle; every step is counted in events, so a replay of
    the same stream takes the same steps whatever its batching):

    1. **Baseline.**  The first ``window`` events measure the champion's
       expected alert rate (share of events scoring at or above the threshold in
       force), unless ``expected_rate`` is given.
    2. **Watch.**  Every score feeds an :class:`~anomaly_fast.ADWIN` (the score
       distribution's drift detector); the stream is also cut into blocks of
       ``persistence // 4`` events.  A suspected change starts after an ADWIN
       detection or after a block whose alert rate is *elevated*: above
       ``tolerance * expected + 3 * sqrt(expected / n)`` for a block of ``n``
       scored events (the 3 sigma allowance of a Poisson count).
    3. **Lasting or incident?**  The ``persistence`` events after the suspicion
       (and at least ``min_duration`` seconds of event time) are split into four
       equal blocks.  The change is *lasting* only if all three hold:

       - *persistent*: the alert rate is elevated in every block (a burst
         shorter than three blocks fails);
       - *spread*: at least ``min_entity_share`` of the entities seen in the
         span have an elevated alert rate of their own (a burst from one or a
         few entities fails; a single-entity stream passes);
       - *not an emergency*: at most ``max_top_tier_share`` of the span's
         alerts are in the highest tier.

       Otherwise it is recorded as an ``"incident"`` and nothing adapts.
    4. **Challenger.**  Once ``max(window, persistence)`` events have been seen
       since the suspicion, a challenger is fitted on them (finite rows only): a
       :func:`~sklearn.base.clone` of the champion (same parameters; an unseeded
       ``random_state`` becomes ``random_state + number of challengers``), or,
       for a streaming detector without ``fit``, a copy of the champion that
       learns the window with ``learn_many``.  The fit runs in a background thread and
       is saved to ``registry`` (if given) with its training window's event-time
       range in ``tags``.
    5. **Shadow and promotion.**  The next ``shadow`` events are scored by the
       champion (which keeps alerting) and kept.  At the last of them the
       pipeline waits for the fit if it is not done (it normally is: a fit costs
       milliseconds, a shadow period seconds of traffic), scores the kept events
       with the challenger and **promotes** it when its alert rate is near the
       expected one (not elevated) while the champion's is elevated; otherwise
       the challenger is rejected.  A promoted challenger scores every event
       after the decision event; the score ADWIN and the blocks restart.

    Decisions are taken at fixed event counts and a challenger's fit is seeded,
    so the result does not depend on how long the fit took: re-feeding a stream
    from its start after a crash gives the same changes, versions and alerts.
    The threshold controller is *kept* across a promotion: a challenger is the
    same estimator with the same score scale, and the threshold reflects the
    analysts' precision target, not the model.

    Examples
    --------
    >>> from anomaly_fast.pipeline.adaptation import AdaptationPolicy
    >>> AdaptationPolicy(window=1000, persistence=400).block
    100
    """

    _parameter_constraints: dict = {
        "window": [Interval(Integral, 1, None, closed="left")],
        "persistence": [Interval(Integral, 4, None, closed="left")],
        "min_duration": [Interval(Real, 0, None, closed="left")],
        "shadow": [Interval(Integral, 1, None, closed="left")],
        "expected_rate": [Interval(Real, 0, 1, closed="neither"), StrOptions({"auto"})],
        "tolerance": [Interval(Real, 1, None, closed="left")],
        "min_entity_share": [Interval(Real, 0, 1, closed="both")],
        "max_top_tier_share": [Interval(Real, 0, 1, closed="both")],
        "delta": [Interval(Real, 0, 1, closed="neither")],
        "registry": "no_validation",
        "random_state": [Interval(Integral, 0, None, closed="left")],
        "on_change": [callable, None],
    }

    def __init__(
        self,
        window: int = 2000,
        persistence: int = 1000,
        min_duration: float = 0.0,
        shadow: int = 500,
        expected_rate: float | Literal["auto"] = "auto",
        tolerance: float = 2.0,
        min_entity_share: float = 0.5,
        max_top_tier_share: float = 0.5,
        delta: float = 0.002,
        registry: ModelRegistry | str | os.PathLike[str] | None = None,
        random_state: int = 0,
        on_change: Callable[[list[dict[str, Any]]], object] | None = None,
    ) -> None:
        params = dict(locals())
        del params["self"]
        validate_parameter_constraints(self._parameter_constraints, params, caller_name="AdaptationPolicy")
        self.window = int(window)
        self.persistence = int(persistence)
        self.min_duration = float(min_duration)
        self.shadow = int(shadow)
        self.expected_rate = expected_rate if expected_rate == "auto" else float(expected_rate)
        self.tolerance = float(tolerance)
        self.min_entity_share = float(min_entity_share)
        self.max_top_tier_share = float(max_top_tier_share)
        self.delta = float(delta)
        self.registry = registry
        self.random_state = int(random_state)
        self.on_change = on_change

    @property
    def block(self) -> int:
        """Events per block: ``persistence // 4``."""
        return self.persistence // 4

    def elevated(self, hits: int, n: int, expected: float) -> bool:
        """Whether ``hits`` alerts in ``n`` scored events are above the
        expected rate's tolerance (False when ``n`` is 0)."""
        if n == 0:
            return False
        return hits / n > self.tolerance * expected + 3.0 * math.sqrt(expected / n)

    def __repr__(self):
        return (
            f"AdaptationPolicy(window={self.window}, persistence={self.persistence}, shadow={self.shadow}, "
            f"expected_rate={self.expected_rate!r}, tolerance={self.tolerance:g})"
        )


def fit_challenger(champion: Any, X: npt.ArrayLike, seed: int) -> Any:
    """A challenger fitted on ``X``: a clone of ``champion`` (an unseeded
    ``random_state`` becomes ``seed``), or for a streaming detector without
    ``fit`` a copy of it that learns ``X``."""
    if hasattr(champion, "fit"):
        model = clone(champion)
        params = model.get_params(deep=False)
        if "random_state" in params and not isinstance(params["random_state"], Integral):
            model.set_params(random_state=seed)
        return model.fit(X)
    if hasattr(champion, "learn_many"):
        model = copy.deepcopy(champion)
        model.learn_many(X)
        return model
    raise TypeError(f"{type(champion).__name__} has neither fit nor learn_many: it cannot be adapted")


class _Fit:
    """A challenger fitted (and registered) in a background thread; its
    result is read only at the promotion decision, waiting if needed."""

    def __init__(self, champion, X, seed, registry, tags, feature_names):
        self.result = None  # (model, version) or an exception
        self._thread = threading.Thread(
            target=self._run,
            args=(champion, X, seed, registry, tags, feature_names),
            name="anomaly-fast-challenger",
            daemon=True,
        )
        self._thread.start()

    def _run(self, champion, X, seed, registry, tags, feature_names):
        try:
            model = fit_challenger(champion, X, seed)
            from .registry import model_version

            version = model_version(model)
            if registry is not None:
                try:
                    version = registry.save(model, X, feature_names=feature_names, tags=tags)
                except Exception as exc:  # noqa: BLE001 - the version is content-derived: the same either way
                    warnings.warn(
                        f"challenger {version} not saved to the registry: {exc}", RuntimeWarning, stacklevel=2
                    )
            self.result = (model, version)
        except Exception as exc:  # noqa: BLE001 - reported as a rejection at the decision
            self.result = exc

    def wait(self):
        self._thread.join()
        return self.result


class Adapter:
    """The adaptation state of one pipeline (private to
    :class:`~anomaly_fast.pipeline.AnomalyPipeline`).

    The pipeline scores at most :meth:`until_decision` events with the
    current champion, then passes them to :meth:`observe`; a promotion is
    decided on the last event of a call to :meth:`observe` only, and takes
    effect (``use_model``) for the following events.  :meth:`commit` and
    :meth:`rollback` make a pipeline call that failed leave the adapter as
    it was (a checkpoint plus the committed inputs since it).
    """

    def __init__(self, policy, champion, version, scorers, *, make_scorers, use_model, top_bound, feature_names):
        self.policy = policy
        self._make_scorers = make_scorers
        self._use_model = use_model
        self.top_bound = float(top_bound)
        self.feature_names = list(feature_names)
        registry = policy.registry
        if registry is not None and not hasattr(registry, "save"):
            from .registry import ModelRegistry

            registry = ModelRegistry(registry)
        self.registry = registry
        self.initial_version = version
        self.s = _State(champion, version, scorers, policy)
        self.s.top_bound = float(top_bound)
        self._checkpoint = self.s.copy()
        self._journal = []  # committed observe() inputs since the checkpoint
        self._journal_n = 0
        self._pending = []  # inputs of the call in progress
        self.pending_changes = []  # model-change records of the call in progress

    # -- the pipeline's hooks -------------------------------------------------------
    @property
    def version(self):
        return self.s.version

    def initial_record(self):
        return self._record(0, -math.inf, "initial", self.initial_version, None, "the stream's first champion", {})

    def until_decision(self):
        """How many next events the current champion certainly scores (a
        promotion can happen on the last of them at the earliest)."""
        p, s = self.policy, self.s
        span = max(p.window, p.persistence)
        if s.phase == _SHADOW:
            return p.shadow - s.shadow_n
        if s.phase in (_SUSPECT, _COLLECT):  # the suspect span may outlast the window (min_duration)
            return max(span - s.cycle_n, 1) + p.shadow
        return 1 + span + p.shadow

    def observe(self, X, ts, scores, thresholds, entities):
        """Take scored events (rows of ``X``, event times, scores in [0, 1]
        or NaN, the thresholds in force, entity ids)."""
        inputs = (
            X,
            np.asarray(ts, dtype=np.float64).reshape(-1),
            np.asarray(scores, dtype=np.float64).reshape(-1),
            np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (X.shape[0],)),
            entities,
        )
        self._pending.append(inputs)
        self._observe(*inputs, emit=True)

    def commit(self):
        if self._pending:
            self._journal.extend(self._pending)
            self._journal_n += sum(x[0].shape[0] for x in self._pending)
            self._pending = []
        self.pending_changes = []
        if self._journal_n >= _CHECKPOINT_EVENTS:
            self._checkpoint = self.s.copy()
            self._journal, self._journal_n = [], 0

    def rollback(self):
        """Forget the call in progress: the checkpoint, then the committed
        inputs since it again (their changes were stored already)."""
        self._pending = []
        self.pending_changes = []
        self.s = self._checkpoint.copy()
        for inputs in self._journal:
            self._observe(*inputs, emit=False)
        self._use_model(self.s.champion, self.s.version, self.s.scorers)

    # -- the state machine ----------------------------------------------------------
    def _observe(self, X, ts, scores, thresholds, entities, emit):
        s, p = self.s, self.policy
        m = X.shape[0]
        finite = np.isfinite(scores)
        hit = finite & (scores >= thresholds)
        rows = np.flatnonzero(finite)
        detections = rows[s.adwin.update_many(scores[rows])] if rows.shape[0] else rows
        blocks = self._blocks(finite, hit)
        i = 0
        while i < m:
            if s.phase == _BASELINE:
                k = min(m - i, p.window - s.base_n)
                s.base_n += k
                s.base_finite += int(finite[i : i + k].sum())
                s.base_hits += int(hit[i : i + k].sum())
                i += k
                if s.base_n == p.window:
                    if p.expected_rate == "auto":
                        s.expected = max(s.base_hits / max(s.base_finite, 1), 1.0 / p.window)
                    s.phase = _WATCH
            elif s.phase == _WATCH:
                j, why = self._trigger(detections, blocks, i)
                if j is None:
                    i = m
                    continue
                s.start_cycle(s.n + j + 1, why)
                i = j + 1
            elif s.phase == _SUSPECT:
                need = p.persistence - s.cycle_n
                if need > 0:
                    k = min(m - i, need)
                else:  # the count is reached, the event-time span not yet: up to the event that reaches it
                    late = np.flatnonzero(ts[i:] - s.cycle_start_time >= p.min_duration)
                    k = int(late[0]) + 1 if late.shape[0] else m - i
                self._collect(s, X, ts, finite, hit, scores, entities, i, i + k, suspect=True)
                i += k
                if s.cycle_n >= p.persistence and ts[i - 1] - s.cycle_start_time >= p.min_duration:
                    self._judge(s, s.n + i - 1, float(ts[i - 1]), emit)
            elif s.phase == _COLLECT:
                k = min(m - i, max(p.window, p.persistence) - s.cycle_n)
                self._collect(s, X, ts, finite, hit, scores, entities, i, i + k, suspect=False)
                i += k
                if s.cycle_n >= max(p.window, p.persistence):
                    self._start_fit(s)
            else:  # _SHADOW
                k = min(m - i, p.shadow - s.shadow_n)
                keep = finite[i : i + k]
                s.shadow_X.append(X[i : i + k][keep])
                s.shadow_thresholds.append(thresholds[i : i + k][keep])
                s.shadow_hits += int(hit[i : i + k].sum())
                s.shadow_finite += int(keep.sum())
                s.shadow_n += k
                i += k
                if s.shadow_n == p.shadow:
                    if i != m:
                        raise RuntimeError("adaptation: a promotion decision fell inside a scored segment")
                    self._decide(s, s.n + i - 1, float(ts[i - 1]), emit)
        s.n += m

    def _blocks(self, finite, hit):
        """[(row, hits, scored)] of the blocks that end in this call (the
        block counters advance in every phase)."""
        s, block = self.s, self.policy.block
        out = []
        m, i = finite.shape[0], 0
        while i < m:
            k = min(m - i, block - s.block_n)
            s.block_n += k
            s.block_finite += int(finite[i : i + k].sum())
            s.block_hits += int(hit[i : i + k].sum())
            i += k
            if s.block_n == block:
                out.append((i - 1, s.block_hits, s.block_finite))
                s.block_n = s.block_finite = s.block_hits = 0
        return out

    def _trigger(self, detections, blocks, i):
        """(row, reason) of the first watch-phase trigger at or after row
        ``i``: an ADWIN detection or the end of a block with an elevated
        alert rate; (None, None) when there is none."""
        p, expected = self.policy, self.s.expected
        j = int(detections[detections >= i][0]) if (detections >= i).any() else None
        why = None if j is None else "the score distribution changed (ADWIN)"
        for row, hits, n in blocks:
            if row >= i and (j is None or row < j) and p.elevated(hits, n, expected):
                return row, (
                    f"alert rate {hits / n:.4f} over a block of {p.block} events is above "
                    f"{p.tolerance:g}x the expected {expected:.4f}"
                )
        return j, why

    @staticmethod
    def _collect(s, X, ts, finite, hit, scores, entities, a, b, suspect):
        if b <= a:
            return
        keep = finite[a:b]
        s.window_X.append(X[a:b][keep])
        s.window_ts.append(ts[a:b][keep])
        if s.cycle_start_time is None:
            s.cycle_start_time = float(ts[a])
        s.cycle_n += b - a
        if suspect:
            s.span_finite.append(keep)
            s.span_hit.append(hit[a:b])
            s.span_top += int((hit[a:b] & (scores[a:b] >= s.top_bound)).sum())
            for e, f, h in zip(entities[a:b], keep.tolist(), hit[a:b].tolist()):
                counts = s.entities.get(e)
                if counts is None:
                    counts = s.entities[e] = [0, 0]
                counts[0] += f
                counts[1] += h

    def _judge(self, s, index, event_time, emit):
        """End of the persistence span: lasting change or incident."""
        p = self.policy
        finite = np.concatenate(s.span_finite)
        hit = np.concatenate(s.span_hit)
        blocks = [(int(h.sum()), int(f.sum())) for h, f in zip(np.array_split(hit, 4), np.array_split(finite, 4))]
        elevated_blocks = sum(p.elevated(h, f, s.expected) for h, f in blocks)
        active = [c for c in s.entities.values() if c[0] > 0]
        elevated_entities = sum(p.elevated(h, f, s.expected) for f, h in active)
        entity_share = elevated_entities / len(active) if active else 0.0
        hits = int(hit.sum())
        top_share = s.span_top / hits if hits else 0.0
        detail = {
            "since_event": s.cycle_start,
            "since": s.cycle_start_time,
            "trigger": s.trigger,
            "block_rates": [h / f if f else 0.0 for h, f in blocks],
            "expected_rate": s.expected,
            "entities": len(active),
            "elevated_entity_share": entity_share,
            "top_tier_share": top_share,
        }
        why = []
        if elevated_blocks < 4:
            why.append(f"the alert rate was elevated in {elevated_blocks} of 4 blocks only (a burst)")
        if entity_share < p.min_entity_share:
            why.append(
                f"only {elevated_entities} of {len(active)} entities had elevated rates "
                f"(< {p.min_entity_share:g}: concentrated)"
            )
        if top_share > p.max_top_tier_share:
            why.append(f"{top_share:.2f} of the alerts were in the highest tier (an emergency)")
        s.entities = {}
        s.span_finite, s.span_hit, s.span_top = [], [], 0
        if why:
            self._emit(emit, index, event_time, "incident", s.version, None, "; ".join(why), detail)
            s.end_cycle()
            return
        self._emit(
            emit, index, event_time, "change", s.version, None, f"lasting change since event {s.cycle_start}", detail
        )
        s.phase = _COLLECT
        if s.cycle_n >= max(p.window, p.persistence):
            self._start_fit(s)

    def _start_fit(self, s):
        X = np.vstack(s.window_X) if s.window_X else np.empty((0, len(self.feature_names)))
        ts = np.concatenate(s.window_ts) if s.window_ts else np.empty(0)
        s.window_X, s.window_ts = [], []
        window = {
            "start": float(ts.min()) if ts.shape[0] else None,
            "end": float(ts.max()) if ts.shape[0] else None,
            "events": int(X.shape[0]),
        }
        params = getattr(s.champion, "get_params", dict)()
        seed = params.get("random_state")
        seed = (
            seed if isinstance(seed, Integral) and not isinstance(seed, bool) else self.policy.random_state + s.n_fits
        )
        tags = {"role": "challenger", "champion": s.version, "training_window": window}
        s.fit_X = X
        s.fit = _Fit(s.champion, X, seed, self.registry, tags, self.feature_names) if X.shape[0] else None
        s.fit_window = window
        s.n_fits += 1
        s.phase = _SHADOW

    def _decide(self, s, index, event_time, emit):
        p = self.policy
        result = s.fit.wait() if s.fit is not None else ValueError("no finite events in the window")
        X = np.vstack(s.shadow_X) if s.shadow_X else np.empty((0, len(self.feature_names)))
        thresholds = np.concatenate(s.shadow_thresholds) if s.shadow_thresholds else np.empty(0)
        champion_rate = s.shadow_hits / s.shadow_finite if s.shadow_finite else 0.0
        detail = {
            "training_window": s.fit_window,
            "shadow_events": p.shadow,
            "champion_rate": champion_rate,
            "expected_rate": s.expected,
        }
        previous = s.version
        if isinstance(result, BaseException):
            s.end_cycle()
            self._emit(
                emit,
                index,
                event_time,
                "rejection",
                None,
                previous,
                f"the challenger could not be fitted: {type(result).__name__}: {result}",
                detail,
            )
            return
        model, version = result
        scorers = self._make_scorers(model, s.fit_X)
        scores = scorers[0](X) if X.shape[0] else np.empty(0)
        finite = np.isfinite(scores)
        hits = int((finite & (scores >= thresholds)).sum())
        n = int(finite.sum())
        challenger_rate = hits / n if n else 1.0
        detail["challenger_rate"] = challenger_rate
        self._emit(
            emit,
            index,
            event_time,
            "challenger",
            version,
            previous,
            f"fitted on {s.fit_window['events']} events of event time [{s.fit_window['start']}, {s.fit_window['end']}]",
            detail,
        )
        champion_high = p.elevated(s.shadow_hits, s.shadow_finite, s.expected)
        challenger_near = n > 0 and not p.elevated(hits, n, s.expected)
        s.end_cycle()
        if champion_high and challenger_near:
            s.champion, s.version, s.scorers = model, version, scorers
            s.adwin = ADWIN(delta=p.delta)
            s.block_n = s.block_finite = s.block_hits = 0
            s.n_promotions += 1
            self._use_model(model, version, scorers)
            self._emit(
                emit,
                index,
                event_time,
                "promotion",
                version,
                previous,
                f"challenger alert rate {challenger_rate:.4f} near the expected {s.expected:.4f}, "
                f"champion's {champion_rate:.4f} is not",
                detail,
            )
        else:
            why = (
                f"the champion's alert rate {champion_rate:.4f} is near the expected {s.expected:.4f}"
                if not champion_high
                else f"the challenger's alert rate {challenger_rate:.4f} is not near the expected {s.expected:.4f}"
            )
            self._emit(emit, index, event_time, "rejection", version, previous, why, detail)

    def _emit(self, emit, index, event_time, kind, version, previous, reason, detail):
        if emit:
            self.pending_changes.append(self._record(index, event_time, kind, version, previous, reason, detail))

    @staticmethod
    def _record(index, event_time, kind, version, previous, reason, detail):
        return {
            "timestamp": time.time(),
            "event_index": int(index),
            "event_time": float(event_time),
            "kind": kind,
            "version": version,
            "previous": previous,
            "reason": reason,
            "detail": detail,
        }


class _State:
    """Everything :class:`Adapter` remembers between events (copied for the
    undo checkpoint: models and fits are shared, buffers copied)."""

    def __init__(self, champion, version, scorers, policy):
        self.champion, self.version, self.scorers = champion, version, scorers
        self.top_bound = math.inf
        self.adwin = ADWIN(delta=policy.delta)
        self.n = 0  # events observed
        self.phase = _BASELINE
        self.expected = None if policy.expected_rate == "auto" else policy.expected_rate
        if self.expected is not None:
            self.phase = _WATCH
        self.base_n = self.base_finite = self.base_hits = 0
        self.block_n = self.block_finite = self.block_hits = 0
        self.n_fits = self.n_promotions = 0
        self.end_cycle()

    def start_cycle(self, index, trigger):
        self.phase = _SUSPECT
        self.cycle_start, self.trigger = index, trigger

    def end_cycle(self):
        if getattr(self, "expected", None) is not None:
            self.phase = _WATCH
        self.cycle_start, self.cycle_start_time, self.trigger, self.cycle_n = None, None, None, 0
        self.window_X, self.window_ts = [], []
        self.span_finite, self.span_hit, self.span_top, self.entities = [], [], 0, {}
        self.fit, self.fit_window, self.fit_X = None, None, None
        self.shadow_X, self.shadow_thresholds = [], []
        self.shadow_n = self.shadow_hits = self.shadow_finite = 0

    def copy(self):
        new = copy.copy(self)
        new.adwin = copy.deepcopy(self.adwin)
        for name in ("window_X", "window_ts", "span_finite", "span_hit", "shadow_X", "shadow_thresholds"):
            setattr(new, name, list(getattr(self, name)))
        new.entities = {e: list(c) for e, c in self.entities.items()}
        return new
