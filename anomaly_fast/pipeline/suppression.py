"""Per-entity suppression by event time: whether an alert candidate is a new
alert, an escalation of the entity's last alert, or suppressed.

The entity's last alert at or before the candidate's event time is read
from the alert store inside the pipeline's write transaction
(:meth:`AlertStore.latest_alert`), so the decision is the same for every
writer of the store and for a replayed stream.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["NEW", "ESCALATION", "SUPPRESSED", "decide"]

NEW, ESCALATION, SUPPRESSED = "new", "escalation", "suppressed"


def decide(
    last: tuple[float, str, str] | None, event_time: float, tier: str, window: float, tier_rank: Mapping[str, int]
) -> str:
    """Decide one alert candidate.

    Parameters
    ----------
    last : tuple or None
        ``(event_time, tier, alert_id)`` of the entity's last alert at or
        before ``event_time``, or None.
    event_time : float
        The candidate's event time (seconds).
    tier : str
        The candidate's tier.
    window : float
        ``suppression_window`` in seconds.
    tier_rank : dict
        Tier name -> rank (higher = more severe).

    Returns
    -------
    str
        ``NEW`` (no alert within ``window`` before it), ``ESCALATION`` (within
        the window but of a higher tier) or ``SUPPRESSED``.

    Examples
    --------
    >>> rank = {"warning": 0, "critical": 1}
    >>> decide(None, 100.0, "warning", 60.0, rank)
    'new'
    >>> decide((90.0, "warning", "a1"), 100.0, "critical", 60.0, rank)
    'escalation'
    >>> decide((90.0, "critical", "a1"), 100.0, "warning", 60.0, rank)
    'suppressed'
    >>> decide((30.0, "critical", "a1"), 100.0, "warning", 60.0, rank)
    'new'
    """
    if last is None or event_time - last[0] >= window:
        return NEW
    if tier_rank[tier] > tier_rank.get(last[1], -1):
        return ESCALATION
    return SUPPRESSED
