"""The state as a cycle's collect reads it, read in a few queries for every account.

Each account's collect asks the state for its cursors, resume points and stored failed
deliveries (`watcher.providers.base.StateView`): four to five small queries per account
and cycle. Nothing writes the state between the start of the collect and the commit
(the commit is the cycle's step 6), so `CollectView` reads those rows of every account
once, when the collect starts, and answers from them; anything else (the audit ids
seen, the balance history, the slow sources' kept texts, which can be long) goes to the
store as before. A view serves one collect and is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from watcher.core.model import AuditEvent, Balance, WebhookDelivery
from watcher.state.cursors import resume_key
from watcher.state.db import dt
from watcher.state.store import Store


class CollectView:
    """`Store`'s reads for a collect: cursors and resume points of `sources`, and the
    failed deliveries started at or after `since` (None: none read ahead), of every
    account as they are now; the other reads from the store itself."""

    def __init__(self, store: Store, sources: Iterable[str], since: datetime | None) -> None:
        self._store = store
        self._names = frozenset({str(s) for s in sources} | {resume_key(str(s)) for s in sources})
        self._cursors = store.cursor_rows(self._names)
        self._since = since
        self._failures: dict[str, list[WebhookDelivery]] = {}
        if since is not None:
            for account, delivery in store.all_webhook_failures(since):
                self._failures.setdefault(account, []).append(delivery)

    def get_cursor(self, account: str, source: str) -> datetime | None:
        if str(source) not in self._names:
            return self._store.get_cursor(account, source)
        value = self._cursors.get((account, str(source)))
        return None if value is None else dt(value)

    def get_resume(self, account: str, source: str) -> str | None:
        key = resume_key(str(source))
        if key not in self._names:
            return self._store.get_resume(account, source)
        return self._cursors.get((account, key))

    def webhook_failures(self, account: str, since: datetime) -> list[WebhookDelivery]:
        if self._since is None or since < self._since:
            return self._store.webhook_failures(account, since)
        return [d for d in self._failures.get(account, ()) if d.started_at >= since]

    def unseen_audit_events(self, account: str, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        return self._store.unseen_audit_events(account, events)

    def balance_samples(self, account: str, since: datetime) -> list[tuple[datetime, Balance]]:
        return self._store.balance_samples(account, since)
