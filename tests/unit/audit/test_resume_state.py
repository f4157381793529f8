"""The audit appender's saved resume point (issue 16): round trip, and every unusable file is a full restore."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from broker.audit.log import ChainPosition
from broker.audit.resume import AppenderState, load_state, save_state

STATE = AppenderState(
    topic="p.audit",
    head_offset=41,
    head="origin\n12\nroot\n\n\u2014 origin sig\n",
    size=12,
    root=bytes(range(32)),
    chain=ChainPosition(12, bytes(32), 9),
    checkpoint=None,
    checkpoint_size=0,
    cursor={0: 7, 3: 19},
)


def test_a_saved_state_loads_as_it_was_and_only_its_owner_may_read_it(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(path, STATE)
    assert load_state(path, "p.audit") == (STATE, "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    later = AppenderState(**{**{f: getattr(STATE, f) for f in STATE.__slots__}, "checkpoint": "cp", "size": 13,
                             "chain": ChainPosition(13, bytes(32), 9)})  # fmt: skip
    save_state(path, later)  # replaced whole, never appended to
    assert load_state(path, "p.audit") == (later, "")
    assert not path.with_name("state.json.tmp").exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no saved state"),
        (b"", "not an appender state"),
        (b'{"version": 2}', "version 2"),
        (b"[1, 2]", "not an appender state"),
        (STATE.to_json().replace(b'"size":12', b'"size":13'), "inconsistent sizes"),
        (STATE.to_json().replace(b'"root":"00', b'"root":"zz'), "not an appender state"),
    ],
)
def test_an_unusable_state_is_named_and_means_a_restore_from_the_start(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "state.json"
    if content is not None:
        path.write_bytes(content)
    state, why = load_state(path, "p.audit")
    assert state is None
    assert reason in why


def test_a_state_saved_for_another_topic_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(path, STATE)
    state, why = load_state(path, "q.audit")
    assert state is None
    assert "'p.audit'" in why
