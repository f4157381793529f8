"""Issue 16: an audit appender resumes from the point its predecessor on the same disk saved, reading only the
log's tail, and still refuses a log that was cut, rewritten or extended by someone without the log key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from broker.audit import AuditLog, entry_line, parse_log
from broker.audit.appender import AuditAppender, _Raw
from broker.audit.errors import AuditUnavailableError
from tests.integration.audit.conftest import AuditRig, record

pytestmark = pytest.mark.integration


async def _start(appender: AuditAppender) -> None:
    try:
        await appender.start(standby_wait_s=60)
    except BaseException:
        await appender.stop()
        raise


async def test_a_restarted_appender_reads_only_the_tail_after_its_saved_head(rig: AuditRig, tmp_path: Path) -> None:
    here = tmp_path / "appender"
    assert await rig.write(0, 30, here) == list(range(30))
    assert stat.S_IMODE((here / "state.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(here.stat().st_mode) == 0o700
    total = len(await rig.lines())

    appender = rig.appender(tree_dir=here)
    await _start(appender)
    try:
        assert appender.resumed_at == 30
        assert appender.restore_records <= 3 < total  # its own last head and the checkpoint cosigning it
        assert [(await appender.append(record(30 + i))).index for i in range(10)] == list(range(30, 40))
    finally:
        await appender.stop()

    whole = rig.appender()  # no folder: the whole log, as before issue 16
    await _start(whole)
    try:
        assert (whole.resumed_at, whole.next_index) == (0, 40)
        assert whole.restore_records == len(await rig.lines())
    finally:
        await whole.stop()
    result = await rig.verify()
    assert result.ok, [p.describe() for p in result.problems]
    assert [e.index for e in parse_log(await rig.lines()).entries] == list(range(40))


async def test_an_appender_resumes_after_another_host_extended_the_log(rig: AuditRig, tmp_path: Path) -> None:
    mine, theirs = tmp_path / "a", tmp_path / "b"
    await rig.write(0, 20, mine)
    await rig.write(20, 15, theirs)  # another host, from the log's start: it had no saved point
    appender = rig.appender(tree_dir=mine)
    await _start(appender)
    try:
        assert (appender.resumed_at, appender.next_index) == (20, 35)
        assert [(await appender.append(record(35 + i))).index for i in range(5)] == list(range(35, 40))
    finally:
        await appender.stop()
    result = await rig.verify()
    assert result.ok, [p.describe() for p in result.problems]
    entries = parse_log(await rig.lines()).entries
    assert [e.index for e in entries] == list(range(40))
    assert len({e.record for e in entries}) == 40  # nothing appended twice


async def test_a_log_cut_or_rewritten_below_the_saved_head_is_refused(rig: AuditRig, tmp_path: Path) -> None:
    here = tmp_path / "appender"
    await rig.write(0, 4, here)
    first = await rig.lines()
    await rig.write(4, 4, here)
    await rig.recreate(rig.names.audit, first)  # the second batch and its checkpoint cut away
    appender = rig.appender(tree_dir=here)
    with pytest.raises(AuditUnavailableError, match=r"TRUNCATION at 8: the log ends before offset \d+") as cut:
        await _start(appender)
    assert str(here) in str(cut.value)  # and says how an operator who recreated the topic on purpose goes on

    await rig.recreate(rig.names.audit, first * 10)  # as long as before, other records at the saved offset
    appender = rig.appender(tree_dir=here)
    with pytest.raises(AuditUnavailableError, match=r"REWRITE at 8: offset \d+ no longer holds the head of size 8"):
        await _start(appender)


async def test_an_entry_forged_after_the_saved_head_is_refused(rig: AuditRig, tmp_path: Path) -> None:
    here = tmp_path / "appender"
    await rig.write(0, 5, here)
    stored = parse_log(await rig.lines())
    chain = AuditLog(retain=False)
    for e in stored.entries:
        chain.append(_Raw(e.record))
    await rig.put(rig.names.audit, [entry_line(chain.append(record(99)))])  # no log key: no head covers it
    appender = rig.appender(tree_dir=here)
    with pytest.raises(AuditUnavailableError, match=r"REWRITE at 5: entries 5\.\.5 are covered by no checkpoint"):
        await _start(appender)
    assert appender.resumed_at == 5  # found while resuming, not by a restore from the start


@pytest.mark.parametrize("damage", ["state", "tree"])
async def test_a_saved_point_that_does_not_match_its_files_means_a_restore_from_the_start(
    rig: AuditRig, tmp_path: Path, damage: str
) -> None:
    here = tmp_path / "appender"
    await rig.write(0, 10, here)
    if damage == "state":
        (here / "state.json").write_bytes(b"{")
    else:  # a lost write: the newest leaf's hash is not the one the state's root covers
        leaves = here / "tree" / "level-00.bin"
        data = bytearray(leaves.read_bytes())
        data[-1] ^= 1
        leaves.write_bytes(bytes(data))
    (here / "appender-0a1b2c").mkdir()  # an earlier release's per-appender folder, left by a crash
    appender = rig.appender(tree_dir=here)
    await _start(appender)
    try:
        assert not (here / "appender-0a1b2c").exists()
        assert appender.resumed_at == 0
        assert appender.restore_records == len(await rig.lines())
        assert (await appender.append(record(10))).index == 10
    finally:
        await appender.stop()
    result = await rig.verify()
    assert result.ok, [p.describe() for p in result.problems]
