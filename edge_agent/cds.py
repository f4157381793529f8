"""CDS Hooks on the edge agent: the core's ``patient-consent-consult`` hook, answered offline from the replica.

Same request and cards as the core (:mod:`consent_rules.cds_hooks`); the card's extension carries
``offline: true`` and ``as_at_ms`` (the time as at which the replica's state is known), no audit index.
Authentication is the agent's own, as on every other route: loopback only and the site's bearer token
(:mod:`edge_agent.api_auth`): the clinical system on the site is the only CDS client of its agent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from consent_io.http import json_response
from consent_rules.cds_hooks import SERVICE_ID, card_json, decision_document, discovery
from consent_rules.decision import parse_request
from consent_rules.decision.policy import DEFAULT_POLICY, DecisionPolicy
from edge_agent.offline import decide_offline
from edge_agent.replica import Replica
from edge_agent.submission import Pseudonymiser, load_json

__all__ = ["SERVICE_PATH", "CdsRoutes"]

SERVICE_PATH = f"/cds-services/{SERVICE_ID}"
SOURCE = {"label": "consent-broker edge agent (offline replica)"}


class CdsRoutes:
    def __init__(
        self,
        replica: Callable[[], Replica | None],
        pseudonymise: Pseudonymiser,
        now_ms: Callable[[], int],
        body: Callable[[web.Request], Awaitable[bytes]],
        policy: Callable[[], DecisionPolicy] = lambda: DEFAULT_POLICY,
    ) -> None:
        self._policy = policy
        self._replica = replica
        self._pseudonymise = pseudonymise
        self._now_ms = now_ms
        self._body = body

    async def services(self, request: web.Request) -> web.Response:
        return json_response(discovery("consent-broker edge agent"))

    async def consult(self, request: web.Request) -> web.Response:
        document, kept = decision_document(load_json(await self._body(request)))
        now_ms = self._now_ms()
        parsed = parse_request(document, self._pseudonymise, now_ms)
        if not kept:
            return json_response(card_json(None, SOURCE, kept=False))
        replica = self._replica()
        record = await replica.get(parsed.request.patient_key) if replica else None
        return json_response(card_json(decide_offline(parsed, record, now_ms, self._policy()), SOURCE))
