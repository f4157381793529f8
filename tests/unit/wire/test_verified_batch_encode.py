"""encode_verified_events (issue 18): the batch-level fast path is byte-identical to the generic encoder."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent_wire.errors import ValidationError
from consent_wire.signing import VerifiedEvent, encode_verified_event, encode_verified_events


def _ve(event: bytes, agent: str, first: int, size: int, index: int, proof: list[bytes], root: bytes) -> VerifiedEvent:
    return VerifiedEvent(
        event, None, b"\0" * 32, agent, "k-1", "application/vnd.consent.batch", first, size, index,  # type: ignore[arg-type]
        tuple(proof), root, b"\x07" * 64,
    )  # fmt: skip


hashes = st.binary(min_size=32, max_size=32)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(max_size=300),
            st.text(min_size=1, max_size=40),
            st.integers(min_value=0, max_value=2**63 - 1),
            st.integers(min_value=1, max_value=500),
            st.lists(hashes, max_size=9),
            hashes,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_the_fast_path_writes_exactly_what_the_generic_encoder_writes(rows: list[tuple]) -> None:  # type: ignore[type-arg]
    verified = []
    for event, agent, first_seq, size, proof, root in rows:
        # several events per batch (the cached batch part) and batches after one another
        verified += [_ve(event + bytes([i]), agent, first_seq, size, i, proof, root) for i in range(3)]
    assert encode_verified_events(verified) == [encode_verified_event(ve) for ve in verified]


def test_a_fixed_field_of_the_wrong_size_is_refused_as_by_the_generic_encoder() -> None:
    good = _ve(b"e", "agent", 1, 2, 0, [b"\1" * 32], b"\2" * 32)
    bad = dataclasses.replace(good, root=b"\2" * 31)
    assert encode_verified_events([good])[0] == encode_verified_event(good)
    with pytest.raises(ValidationError):
        encode_verified_events([good, bad])
