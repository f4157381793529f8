"""Intake: validated submissions -> drafts stamped with an id and a hybrid-logical-clock time.

The one place where the clock is read and event ids are made; the HTTP API and the CLI both
submit through an :class:`Intake`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from consent_wire.authority import is_gp_practice
from edge_agent.errors import DeceasedStatusNotGpError
from edge_agent.outbox import Draft, Outbox, Receipt
from edge_agent.submission import Pseudonymiser, Submission, parse_submission, parse_submission_list
from edge_agent.wire import HlcClock

__all__ = ["Intake"]


def _new_event_id() -> str:
    return uuid.uuid4().hex


class Intake:
    def __init__(
        self,
        outbox: Outbox,
        pseudonymise: Pseudonymiser,
        clock: HlcClock,
        now_ms: Callable[[], int],
        new_event_id: Callable[[], str] = _new_event_id,
        *,
        site: str | None = None,
    ) -> None:
        self._outbox = outbox
        self._pseudonymise = pseudonymise
        self._clock = clock
        self._now_ms = now_ms
        self._new_id = new_event_id
        # None: not checked here (the core still dead-letters a death from a key not a GP practice's)
        self._may_state_death = site is None or is_gp_practice(site)
        self._site = site

    async def submit_json(self, doc: object) -> Receipt:
        """Validate one submission document and durably enqueue it."""
        return await self._outbox.submit(self._draft(parse_submission(doc, self._pseudonymise)))

    async def submit_json_batch(self, doc: object) -> list[Receipt]:
        """Validate a ``{"events": [...]}`` document and enqueue all of it or none of it."""
        subs = parse_submission_list(doc, self._pseudonymise)
        return await self._outbox.submit_many([self._draft(s) for s in subs])

    async def submit_many(self, subs: Sequence[Submission]) -> list[Receipt]:
        return await self._outbox.submit_many([self._draft(s) for s in subs])

    def _draft(self, sub: Submission) -> Draft:
        if sub.subject_deceased is not None and not self._may_state_death:
            raise DeceasedStatusNotGpError(
                f"subject_deceased: only a GP practice's agent may state a death or withdraw it; this agent's "
                f"site {self._site!r} is not a practice (ODS code of one letter and five digits)"
            )
        # tick and enqueue happen in the same loop turn, so seq order follows hlc order
        event_id = sub.event_id or self._new_id()
        hlc, now = self._clock.tick(), self._now_ms()
        return Draft(event_id, hlc, now, sub.patient_key, sub.payload, sub.subject_deceased)
