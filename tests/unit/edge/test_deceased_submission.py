"""Issue 14: the edge agent stamps a death (or its withdrawal) stated with a submission on Event v5's
``subject_deceased_ms``, only at a GP practice; elsewhere it refuses with the core's own code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consent_wire import decode_event
from edge_agent.errors import DeceasedStatusNotGpError, InvalidFieldError
from edge_agent.intake import Intake
from edge_agent.outbox import Outbox
from edge_agent.submission import parse_submission
from edge_agent.wire import AvroEventCodec
from tests.fakes import VALID_NHS, FakeClock, fake_pseudonymise

NOW_MS = 1_700_000_000_000
OBJECTION = {
    "type": "objection",
    "nhs_number": VALID_NHS,
    "payload": {"kind": "TYPE1", "action": "REGISTER", "exemptions": []},
}


async def _stamped(tmp_path: Path, site: str, doc: dict[str, Any]) -> int | None:
    outbox = await Outbox.open(
        tmp_path / "o.db", agent_id="agent-1", site=site, codec=AvroEventCodec(), cap_bytes=1 << 30
    )
    try:
        intake = Intake(outbox, fake_pseudonymise, FakeClock(), lambda: NOW_MS, site=site)
        await intake.submit_json(doc)
        (row,) = await outbox.pending(10)
        return decode_event(row.data).subject_deceased_ms
    finally:
        await outbox.close()


@pytest.mark.parametrize(("stated", "expected"), [(True, NOW_MS), (False, 0), (None, None)])
async def test_a_practice_states_a_death_or_withdraws_it_on_the_event(
    tmp_path: Path, stated: bool | None, expected: int | None
) -> None:
    doc = OBJECTION if stated is None else {**OBJECTION, "subject_deceased": stated}
    assert await _stamped(tmp_path, "A81001", doc) == expected


async def test_an_agent_not_at_a_practice_refuses_a_death_and_stores_nothing(tmp_path: Path) -> None:
    outbox = await Outbox.open(
        tmp_path / "o.db", agent_id="agent-1", site="RXH01", codec=AvroEventCodec(), cap_bytes=1 << 30
    )
    try:
        intake = Intake(outbox, fake_pseudonymise, FakeClock(), lambda: NOW_MS, site="RXH01")
        with pytest.raises(DeceasedStatusNotGpError, match="RXH01"):
            await intake.submit_json({**OBJECTION, "subject_deceased": True})
        assert outbox.pending_count == 0
    finally:
        await outbox.close()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({**OBJECTION, "subject_deceased": "yes"}, "must be true"),
        (
            {
                "type": "access_record",
                "nhs_number": VALID_NHS,
                "subject_deceased": True,
                "payload": {
                    "accessor_id": "s",
                    "organisation": "A81001",
                    "role": "GP",
                    "registered": True,
                    "relationship": "LEGITIMATE",
                    "purpose": "TREAT",
                    "data_classes": [],
                },
            },
            "consent_decision, objection or shielding_flag only",
        ),
    ],
)
def test_a_bad_statement_of_death_is_a_precise_400(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFieldError, match=message):
        parse_submission(doc, fake_pseudonymise)
