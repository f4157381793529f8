"""What the API needs from the audit log's appender (the seam with the audit issue's fenced appender).

:class:`broker.audit.appender.AuditAppender` satisfies it: every API process runs one, all share one
transactional id, and only the elected holder appends (a fenced producer: issue 15); a standby waits in
``start``. Every instance reaches the log through an object with this shape, and indexes what it
appends (or reads back) in its own
:class:`broker.views.AuditIndex`. Assumed of that appender: ``append`` returns only once the entry is
durable and in chain order (an instance that is not the holder writes an audit request instead:
:mod:`broker.audit.requests`); ``source`` (``"<partition>/<offset>"`` of an access record's event) is stored
with the entry so ``start`` can report, per partition, how far access records were appended.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from broker.audit import AuditEntry
from broker.audit.lines import RestoredLog
from broker.audit.log import CanonicalRecord
from broker.audit.tlog import InclusionProof

__all__ = ["AuditSink"]


class AuditSink(Protocol):
    stopped: asyncio.Event  # set once it stops appending for good (failed, or another took over)

    @property
    def next_index(self) -> int: ...

    @property
    def holding(self) -> bool:
        """True while this instance is the elected appender (``append`` may be used)."""
        ...

    async def start(self) -> RestoredLog: ...

    async def join(self) -> None:
        """Join the election without waiting (issue 16: many API instances answer while one appends)."""
        ...

    async def activate(self) -> RestoredLog:
        """Wait to be elected, then fence, restore and start appending."""
        ...

    async def append(self, record: CanonicalRecord, source: str | None = None) -> AuditEntry: ...

    async def stop(self) -> None: ...

    @property
    def checkpoint_age_s(self) -> float:
        """Seconds the oldest entry no cosigned checkpoint covers has waited (the audit_checkpoint_age alert)."""
        ...

    @property
    def unsigned_entries(self) -> int: ...

    def proof(self, index: int) -> InclusionProof | None:
        """The inclusion proof of entry ``index`` against the latest cosigned checkpoint (None if newer)."""
