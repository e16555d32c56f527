"""From scores to alerts: the alert pipeline and what it stands on.

- :mod:`.orchestration`: :class:`AnomalyPipeline` (scoring, idempotency,
  the write transaction, restore from the store)
- :mod:`.events`: the alert and event model (:class:`AnomalyAlert`,
  timestamps, metadata, input coercion)
- :mod:`.suppression`: the per-entity, event-time suppression decision
- :mod:`.threshold`: the threshold in force at each event time
- :mod:`.alert_store`: durable alert stores (memory, SQLite)
- :mod:`.registry`: the model registry (versioned model folders)
- :mod:`.adaptation`: replacing the model after a lasting change (:class:`AdaptationPolicy`)
- :mod:`.cli`: the ``fit`` / ``score`` / ``stream`` commands
"""

from .adaptation import AdaptationPolicy
from .orchestration import (  # noqa: F401 - the names the module anomaly_fast.pipeline had
    DEFAULT_THRESHOLD,
    DEFAULT_TIERS,
    STAT_KEYS,
    TIMESTAMP_UNITS,
    AnomalyAlert,
    AnomalyPipeline,
    event_key,
    parse_timestamp,
)

__all__ = ["AdaptationPolicy", "AnomalyAlert", "AnomalyPipeline", "DEFAULT_TIERS", "event_key", "parse_timestamp"]
