"""The API's persistent views (issue 16): pure rows and cache, one SQLite I/O module.

- :mod:`~broker.views.rows` - what each topic record contributes (pure), gathered per fetched batch;
- :mod:`~broker.views.cache` - the bounded LRU cache of decoded states (pure);
- :mod:`~broker.views.store` - SQLite (WAL): states, per-patient history, report events, the audit
  index, and the consumed positions written in the same transaction (the only module touching SQLite).
"""

from broker.views.cache import LruCache
from broker.views.rows import AuditTreeRow, HistoryRow, ReportRow, ViewBatch, event_rows, state_row
from broker.views.store import AuditIndex, ViewStore

__all__ = [
    "AuditIndex",
    "AuditTreeRow",
    "HistoryRow",
    "LruCache",
    "ReportRow",
    "ViewBatch",
    "ViewStore",
    "event_rows",
    "state_row",
]
