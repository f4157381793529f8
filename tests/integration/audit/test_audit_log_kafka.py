"""Acceptance on the real audit topic with two real witnesses (quorum 2): honest operation verifies, and each
attack by someone with write access to the topic (or the log key) is named."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit import AuditUnavailableError, note_line, parse_log
from broker.audit.lines import entry_line
from broker.audit.log import AuditLog
from broker.audit.note import Checkpoint, NoteSigner, parse_note
from broker.audit.tlog import Finding, sign_checkpoint
from broker.audit.tree import MerkleLog
from broker.witness import WitnessRefusedError
from consent_io import kafka
from consent_wire import verify_inclusion
from tests.integration.api.conftest import cli
from tests.integration.audit.conftest import AuditRig, record

pytestmark = pytest.mark.integration


async def test_honest_log_verifies_across_restarts_with_proofs_and_the_cli(rig: AuditRig, kafka_bootstrap: str) -> None:
    assert await rig.write(0, 7) == list(range(7))
    assert await rig.write(7, 5) == list(range(7, 12))
    result = await rig.verify()
    assert result.ok, [p.describe() for p in result.problems]
    assert (result.entries, result.cosigned_size) == (12, 12)
    stored = parse_log(await rig.lines())
    assert [e.index for e in stored.entries] == list(range(12))
    note = parse_note(stored.notes[-1])
    assert len(note.signatures) == 3  # the log key and both witnesses
    appender = rig.appender()
    await appender.start(standby_wait_s=60)
    try:
        proof = appender.proof(4)
        assert proof is not None and proof.tree_size == 12
        root = Checkpoint.parse(parse_note(proof.checkpoint).text).root
        verify_inclusion(record(4).to_bytes(), 4, 12, proof.hashes, root)
    finally:
        await appender.stop()
    args = ["audit", "verify", "--bootstrap", kafka_bootstrap, "--prefix", rig.names.prefix,
            "--log-key", rig.log_key.verifier.vkey()]  # fmt: skip
    for server, key in zip(rig.servers, rig.witness_keys, strict=True):
        args += ["--witness-key", key.verifier.vkey(), "--witness-url", f"https://127.0.0.1:{server.port}"]
    done = await cli(*args)
    assert (done.code, done.out.strip()) == (0, "OK: 12 entries, all under the cosigned checkpoint of size 12"), done


async def test_truncated_and_resigned_with_a_new_key_is_named(rig: AuditRig) -> None:
    await rig.write(0, 8)
    lines = await rig.lines()
    entries = [line for line in lines if b'"type":"entry"' in line][:5]
    tree = MerkleLog()
    for e in parse_log(entries).entries:
        tree.append(e.record)
    forger = NoteSigner(rig.origin, Ed25519PrivateKey.generate())
    forged = sign_checkpoint(forger, rig.origin, 5, tree.root()).to_text()
    topic = await rig.other_topic()
    await rig.put(topic, [*entries, note_line(forged, cosigned=True)])
    found = (await rig.verify(topic)).findings()
    assert {Finding.BAD_SIGNATURE, Finding.TRUNCATION} <= found


async def test_tail_cut_with_its_checkpoints_is_named(rig: AuditRig) -> None:
    await rig.write(0, 4)
    first = await rig.lines()  # 4 entries, their head and their cosigned checkpoint
    await rig.write(4, 4)
    topic = await rig.other_topic()
    await rig.put(topic, first)
    assert (await rig.verify(topic)).findings() == {Finding.TRUNCATION}


async def test_entry_after_the_last_checkpoint_is_named_and_the_appender_refuses_to_extend_it(rig: AuditRig) -> None:
    await rig.write(0, 5)
    stored = parse_log(await rig.lines())
    chain = AuditLog(start=None, retain=False)
    for e in stored.entries:
        chain.append(_Raw(e.record))
    forged = chain.append(record(99))  # forged while no appender runs, by someone with write access
    await rig.put(rig.names.audit, [entry_line(forged)])
    assert (await rig.verify()).findings() == {Finding.UNWITNESSED_ENTRIES}
    appender = rig.appender()
    with pytest.raises(AuditUnavailableError, match=r"REWRITE at 5: entries 5\.\.5 are covered by no checkpoint"):
        await appender.start(standby_wait_s=60)
    await appender.stop()


async def test_rewritten_and_reordered_entries_are_named(rig: AuditRig) -> None:
    await rig.write(0, 6)
    lines = await rig.lines()
    at = [k for k, line in enumerate(lines) if b'"type":"entry"' in line]
    edited = list(lines)
    edited[at[2]] = edited[at[2]].replace(b'\\"outcome\\":\\"PERMIT\\"', b'\\"outcome\\":\\"DENY\\"')
    swapped = list(lines)
    swapped[at[1]], swapped[at[3]] = swapped[at[3]], swapped[at[1]]
    for tampered, finding in ((edited, Finding.REWRITE), (swapped, Finding.REORDERING)):
        topic = await rig.other_topic()
        await rig.put(topic, tampered)
        assert finding in (await rig.verify(topic)).findings()


async def test_split_view_is_named_as_a_fork(rig: AuditRig) -> None:
    """The operator (holding the log key) shows a second reader another history of the same size."""
    await rig.write(0, 4)
    other = [record(100 + i) for i in range(4)]
    chain, tree = AuditLog(retain=False), MerkleLog()
    lines = []
    for r in other:
        lines.append(entry_line(chain.append(r)))
        tree.append(r.to_bytes())
    lines.append(note_line(sign_checkpoint(rig.log_key, rig.origin, 4, tree.root()).to_text(), cosigned=True))
    topic = await rig.other_topic()
    await rig.put(topic, lines)
    found = (await rig.verify(topic)).findings()
    assert {Finding.FORK, Finding.NO_QUORUM} <= found


async def test_a_witness_refuses_a_rollback(rig: AuditRig) -> None:
    await rig.write(0, 3)
    first = parse_log(await rig.lines()).notes[-1]
    await rig.write(3, 3)
    old = parse_note(first)
    w = rig.clients[0]
    try:
        with pytest.raises(WitnessRefusedError) as refused:
            await w.add_checkpoint(6, (), type(old)(old.text, old.signatures[:1]))
        assert refused.value.status == 400  # old size larger than the checkpoint: never cosigned
        with pytest.raises(WitnessRefusedError) as stale:
            await w.add_checkpoint(3, (), type(old)(old.text, old.signatures[:1]))
        assert (stale.value.status, stale.value.body) == (409, "6\n")
    finally:
        await w.close()


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def to_bytes(self) -> bytes:
        return self.data


async def test_a_second_producer_with_the_shared_transactional_id_fences_the_active_appender(rig: AuditRig) -> None:
    """Kafka's own fence on the real broker: once another appender initialises the deployment's transactional id,
    the older one's next transaction fails and it refuses appends (it never extends the log again)."""
    appender = rig.appender()
    await appender.start(standby_wait_s=60)
    intruder = kafka.transactional_producer(rig.deployment.stage_kafka("api"), f"{rig.app_id}.api.audit")
    try:
        await appender.append(record(0))
        await intruder.start()  # InitProducerId bumps the epoch: the appender's producer is now a zombie
        with pytest.raises(AuditUnavailableError):
            await appender.append(record(1))
        with pytest.raises(AuditUnavailableError):
            await appender.append(record(2))
    finally:
        await intruder.stop()
        await appender.stop()
    stored = parse_log(await rig.lines())
    assert [e.index for e in stored.entries] == [0]
