"""`escalate: {after: 30m, route: pager}`, the rule key every kind has (DESIGN §5).

The model only (pure data); what it does is in watcher/core/incident.py: a firing alert
neither acknowledged nor resolved `after` its start is sent to `route` too, once at
`after`, then with every repeat.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from watcher.core.durations import Duration


class Escalate(BaseModel):
    """Where an unacknowledged firing alert goes after a while."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after: Duration = Field(
        description="how long the alert fires unacknowledged before `route` is told too "
        "(counted from the start of firing)",
        examples=["30m"],
    )
    route: Annotated[str, Field(min_length=1)] = Field(
        description="route name from notify.routes that gets the alert after `after`, "
        "then with every repeat until it is acknowledged or resolved",
        examples=["pager"],
    )

    def due(self, fired_at: timedelta) -> bool:
        """Whether an alert firing for `fired_at` is due."""
        return fired_at >= self.after
