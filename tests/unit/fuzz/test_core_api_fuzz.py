"""Property-based HTTP fuzz of the core's API from docs/openapi.yaml (issue 12, acceptance).

Requests generated from the document (valid, broken and random; see :mod:`tests.openapi`) go through the real
aiohttp application over the in-memory backend, with the client's own access token for most and none or a
forged one for the rest. Every answer must come within a second, never be a 5xx, carry a status documented
for its route, and match the documented schema (errors: exactly ``{reason, message}``).
"""

from __future__ import annotations

from collections.abc import Iterator

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from broker.api import create_app
from broker.auth import ASSERTION_TYPE, ClientRegistry, TokenService, make_client_assertion
from tests.openapi import DOCS, Case, Spec
from tests.unit.api.backend import NHS, NOW_MS
from tests.unit.api.test_openapi import _populated
from tests.unit.fuzz.runner import AppRunner, fuzz_settings

pytestmark = pytest.mark.slow

SPEC = Spec(DOCS / "openapi.yaml")
TOKEN_URL = "https://core.test/oauth2/token"
CASES_PER_TEST = 1500  # x 4 tests = 6,000 requests (the agent's fuzz sends the rest of the 10,000)
BACKEND = _populated()
CONSENT_ID = BACKEND.stored[0].event_id  # a Consent the FHIR read finds


def _app_and_token() -> tuple[web.Application, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    entry = {"id": "rx1", "organisation": "RX1", "roles": ["CONSULTANT"], "jwk": jwk}
    registry = ClientRegistry.from_data(
        {"client": [entry | {"scopes": ["decisions", "patient.read", "reports", "audit.read"]}]}
    )
    service = TokenService(registry, Ed25519PrivateKey.generate(), TOKEN_URL)
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_client_assertion("rx1", key, TOKEN_URL, NOW_MS // 1000),
    }
    token = service.exchange(form, NOW_MS // 1000).token
    return create_app(BACKEND, service), token


@pytest.fixture(scope="module")
def core() -> Iterator[AppRunner]:
    app, token = _app_and_token()

    async def build() -> web.Application:
        return app

    with AppRunner(build, SPEC, token) as runner:
        yield runner
    print(f"core fuzz: {runner.statuses.total()} requests, statuses {sorted(runner.statuses.items())}")
    # the fuzz reached the handlers, not only the doors: answers, refusals, and requests in other shapes
    assert {200, 400, 401, 403, 404, 405, 413} <= set(runner.statuses), runner.statuses
    successes = {(path, 200) for path, _ in SPEC.operations() if path != "/oauth2/token"}
    assert successes <= set(runner.reached), sorted(runner.reached)


# Values the fuzz would seldom find by chance: the client's own organisation and role, a patient with data.
HINTS = {
    "role": st.just("CONSULTANT"),
    "nhs_number": st.sampled_from([NHS, "943 476 5919"]),
    "accessor_id": st.just("staff-9"),
    "purpose": st.just("TREAT"),
    "id": st.just(CONSENT_ID),
    "patient": st.sampled_from([NHS, f"https://fhir.nhs.uk/Id/nhs-number|{NHS}"]),
}


def _as_client(doc: object) -> object:
    if isinstance(doc, dict) and isinstance(doc.get("requester"), dict):
        return {**doc, "requester": {**doc["requester"], "organisation": "RX1", "role": "CONSULTANT"}}
    return doc


CASES = SPEC.cases(HINTS)
AUTH = st.sampled_from(["valid"] * 8 + ["none", "forged"])


@fuzz_settings(CASES_PER_TEST)
@given(case=CASES, auth=AUTH)
def test_core_fuzz_documented_and_random_requests(core: AppRunner, case: Case, auth: str) -> None:
    core.check(case, auth)


@fuzz_settings(CASES_PER_TEST)
@given(case=SPEC.cases(HINTS, only=[("/v1/decisions", "POST")]), auth=st.just("valid"))
def test_core_fuzz_decisions(core: AppRunner, case: Case, auth: str) -> None:
    core.check(case, auth)


@fuzz_settings(CASES_PER_TEST)
@given(body=SPEC.values({"$ref": "#/components/schemas/DecisionRequest"}).map(_as_client))
def test_core_fuzz_decisions_as_the_client(core: AppRunner, body: object) -> None:
    """Valid-shaped requests as the client's own organisation and role: these reach the rules and the audit."""
    core.check(Case("POST", "/v1/decisions", core.dumps(body), operation=("/v1/decisions", "POST")), "valid")


@fuzz_settings(CASES_PER_TEST)
@given(case=SPEC.cases(HINTS, only=[op for op in SPEC.operations() if op[1] == "GET"]), auth=st.just("valid"))
def test_core_fuzz_reads_and_reports(core: AppRunner, case: Case, auth: str) -> None:
    core.check(case, auth)
