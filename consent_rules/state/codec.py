"""Canonical JSON of a patient state: the state topic's record format (pure).

:func:`state_to_bytes` writes orjson with sorted keys, so equal states are byte-identical;
:func:`state_from_bytes` accepts only that canonical form (anything else is rebuilt by replay).

Format 6 (current, issue 14) adds the ``deceased`` register: ``null`` when no event has stated the
person's death, else ``{"deceased": true|false, "stamp": ..., "source": ...}``, the latest statement
(Event v5's ``subject_deceased_ms``; ``false`` after a withdrawal), never a date of death. Format 5
added each consent's and objection's ``proxy``: ``null`` when the person recorded it, else
``{"authority": ..., "reference": ...}`` (the proxy's authority, ConsentDecision v3 / Objection v3).
Format 4 combined issue 14's fields - each consent's ``policy_ref`` (rec 20), each
objection's ``exempt_flows`` (rule 5) and the ``quarantine`` register (rule 10) - with issue 16's
bounded ledger (:mod:`consent_rules.state.ledger`): ``applied`` is the window ``[agent_id, seq,
event_id]`` and ``marks`` the per-agent high-water marks ``[agent_id, seq, events]``, so a record's
size no longer grows with the patient's history. Older records are still read - their canonical
bytes only - and upgraded step by step: format 1's shielding ``reason`` is dropped (format 2),
format 2 gains issue 14's fields at their defaults (format 3), format 3's list of every applied
id is counted into the legacy mark (format 4), format 4's registers gain ``proxy: null`` (format
5), and format 5 gains ``deceased: null`` (format 6). The next write of that patient's state is format 6
and log compaction then removes the old
record. Nothing is ever written in an older format.

Errors::

    DecodeError (consent_wire.errors)
    +-- StateDecodeError       BAD_STATE
"""

from __future__ import annotations

from typing import Any

import orjson

from consent_rules.state.ledger import LEGACY_AGENT, Applied, Mark, normalise, version_of
from consent_rules.state.registers import (
    ConsentKey,
    ConsentRegister,
    DeceasedRegister,
    ObjectionKey,
    ObjectionRegister,
    PatientState,
    QuarantinedShielding,
    Register,
    ShieldingRegister,
    Source,
    Stamp,
    objection_key,
)
from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    HiddenField,
    LegalBasis,
    ObjectionKind,
    ProxyAuthorityKind,
    PurposeOfUse,
)
from consent_wire.errors import DecodeError
from consent_wire.model import ProxyAuthority

__all__ = ["STATE_FORMAT", "StateDecodeError", "register_json", "state_from_bytes", "state_to_bytes"]

STATE_FORMAT = 6  # layout version of to_bytes(); bump when the JSON layout changes
_PROXY_FORMAT = 5  # format 5 had no deceased register; read (null), never written
_LEDGER_FORMAT = 4  # format 4 had no proxy on its registers; read (proxy null), never written
_ALL_IDS_FORMAT = 3  # format 3 listed every applied id; read (ids counted), never written
_LEGACY_FORMAT = 1  # format 1 carried shielding.reason; read (reason dropped), never written
_FORMAT_2 = 2  # format 2 lacked policy_ref, exempt_flows and quarantine; read (defaults), never written


class StateDecodeError(DecodeError):
    reason = "BAD_STATE"


def state_to_bytes(state: PatientState) -> bytes:
    """Canonical JSON (orjson, sorted keys): byte-identical for equal states."""
    return orjson.dumps(_state_json(state), option=orjson.OPT_SORT_KEYS)


def state_from_bytes(data: bytes) -> PatientState:
    """Inverse of :func:`state_to_bytes`; raises :class:`StateDecodeError` on bad input."""
    try:
        obj = _typed(orjson.loads(data), dict)
        if obj["format"] in (_LEGACY_FORMAT, _FORMAT_2):
            return _from_legacy(obj, data)
        if obj["format"] == _ALL_IDS_FORMAT:
            return _from_all_ids(obj, data)
        if obj["format"] == _LEDGER_FORMAT:
            return _from_ledger_format(obj, data)
        if obj["format"] == _PROXY_FORMAT:
            return _from_proxy_format(obj, data)
        if obj["format"] != STATE_FORMAT:
            raise ValueError(f"unsupported state format {obj['format']!r}, expected {STATE_FORMAT}")  # noqa: TRY301 - one except names every bad record
        recent = frozenset(_load_applied(e) for e in _typed(obj["applied"], list))
        marks = dict(_load_mark(m) for m in _typed(obj["marks"], list))
        state = PatientState(
            _typed(obj["patient_key"], str),
            dict(_load_consent(c) for c in _typed(obj["consents"], list)),
            dict(_load_objection(o) for o in _typed(obj["objections"], list)),
            _load_shielding(obj["shielding"]),
            marks,
            recent,
            _typed(obj["version"], int),
            _load_quarantine(obj["quarantine"]),
            _load_deceased(obj["deceased"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StateDecodeError(f"not a patient state record: {exc}") from exc
    if (
        state.version != version_of(marks, recent)
        or normalise(marks, recent) != (marks, recent)
        or state_to_bytes(state) != data
    ):
        raise StateDecodeError("patient state record is not in canonical form; rebuild it by replay")
    return state


def _from_all_ids(obj: dict[str, Any], data: bytes) -> PatientState:
    """A canonical format-3 record as a state: its ids are counted into the legacy mark."""
    if orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) != data:
        raise StateDecodeError("patient state record is not in canonical form; rebuild it by replay")
    ids = [_typed(i, str) for i in _typed(obj["applied"], list)]
    if _typed(obj["version"], int) != len(ids) or ids != sorted(set(ids)):
        raise StateDecodeError("patient state record is not in canonical form; rebuild it by replay")
    obj.update(format=_LEDGER_FORMAT, applied=[], marks=[[LEGACY_AGENT, 0, len(ids)]] if ids else [])
    return state_from_bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))


def _from_ledger_format(obj: dict[str, Any], data: bytes) -> PatientState:
    """A canonical format-4 record as a state: every consent and objection register gains ``proxy: null``."""
    if orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) != data:
        raise StateDecodeError("patient state record is not in canonical form; rebuild it by replay")
    for reg in [*_typed(obj["consents"], list), *_typed(obj["objections"], list)]:
        if "proxy" in _typed(reg, dict):
            raise StateDecodeError("a format-4 record has no proxy; rebuild it by replay")
        reg["proxy"] = None
    obj["format"] = _PROXY_FORMAT
    return state_from_bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))


def _from_proxy_format(obj: dict[str, Any], data: bytes) -> PatientState:
    """A canonical format-5 record as a state: it gains ``deceased: null`` (no death stated)."""
    if orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) != data:
        raise StateDecodeError("patient state record is not in canonical form; rebuild it by replay")
    if "deceased" in obj:
        raise StateDecodeError("a format-5 record has no deceased register; rebuild it by replay")
    obj.update(format=STATE_FORMAT, deceased=None)
    return state_from_bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))


def _from_legacy(obj: dict[str, Any], data: bytes) -> PatientState:
    """A canonical format-1 or -2 record as a state: format 1's shielding reason (a string) is checked
    and dropped, format 3's new fields take their defaults."""
    if orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) != data:
        raise StateDecodeError("patient state record is not in canonical form; rebuild it by replay")
    shielding = obj["shielding"]
    if obj["format"] == _LEGACY_FORMAT and shielding is not None:
        _typed(_typed(shielding, dict).pop("reason"), str)
    try:
        _add_format_3_defaults(obj)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateDecodeError(f"not a patient state record: {exc}") from exc
    obj["format"] = _ALL_IDS_FORMAT
    return state_from_bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))


def _add_format_3_defaults(obj: dict[str, Any]) -> None:
    """Format 3's fields at their defaults; an older record that already has one is not canonical."""
    added: list[tuple[Any, str, object]] = [(c, "policy_ref", None) for c in _typed(obj["consents"], list)]
    added += [(o, "exempt_flows", []) for o in _typed(obj["objections"], list)]
    added.append((obj, "quarantine", None))
    for holder, name, default in added:
        if name in _typed(holder, dict):
            raise ValueError(f"a format-{obj['format']} record has no {name}")
        holder[name] = default


def register_json(reg: Register) -> dict[str, object]:
    """One register as JSON (also the merge's canonical tie-break between two forms of one event)."""
    s = reg.stamp
    out: dict[str, object] = {
        "stamp": {"hlc": s.hlc, "agent_id": s.agent_id, "event_id": s.event_id},
        "source": None if reg.source is None else [reg.source[0], reg.source[1]],
    }
    if isinstance(reg, ConsentRegister):
        out.update(
            directive=reg.directive.value,
            period_start_ms=reg.period_start_ms,
            period_end_ms=reg.period_end_ms,
            policy_ref=reg.policy_ref,
            proxy=_proxy_json(reg.proxy),
        )
    elif isinstance(reg, ObjectionRegister):
        out.update(
            active=reg.active,
            exemptions=[b.value for b in reg.exemptions],
            site=reg.site,
            exempt_flows=list(reg.exempt_flows),
            proxy=_proxy_json(reg.proxy),
        )
    elif isinstance(reg, DeceasedRegister):
        out.update(deceased=reg.deceased)
    elif isinstance(reg, QuarantinedShielding):
        out.update(hides=[h.value for h in reg.hides], role=reg.role, reason=reg.reason)
    else:
        out.update(active=reg.active, hides=[h.value for h in reg.hides])
    return out


def _proxy_json(proxy: ProxyAuthority | None) -> dict[str, str] | None:
    return None if proxy is None else {"authority": proxy.authority.value, "reference": proxy.reference}


def _load_proxy(obj: Any) -> ProxyAuthority | None:
    if obj is None:
        return None
    return ProxyAuthority(ProxyAuthorityKind(obj["authority"]), _typed(obj["reference"], str))


def _state_json(state: PatientState) -> dict[str, object]:
    consents = sorted(state.consents.items(), key=lambda kv: (kv[0][0].value, kv[0][1].value, kv[0][2]))
    objections = sorted(state.objections.items(), key=lambda kv: (kv[0][0].value, kv[0][1]))
    return {
        "format": STATE_FORMAT,
        "patient_key": state.patient_key,
        "version": state.version,
        "applied": [[e.agent_id, e.seq, e.event_id] for e in sorted(state.recent)],
        "marks": [[agent, m.seq, m.events] for agent, m in sorted(state.marks.items())],
        "consents": [
            {"purpose": p.value, "data_class": d.value, "recipient": r, **register_json(reg)}
            for (p, d, r), reg in consents
        ],
        "objections": [{"kind": k.value, **register_json(reg)} for (k, _), reg in objections],
        "shielding": None if state.shielding is None else register_json(state.shielding),
        "quarantine": None if state.quarantine is None else register_json(state.quarantine),
        "deceased": None if state.deceased is None else register_json(state.deceased),
    }


def _typed(value: Any, kind: type[Any]) -> Any:
    if type(value) is not kind:
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _load_applied(obj: Any) -> Applied:
    agent, seq, event_id = _typed(obj, list)
    return Applied(_typed(agent, str), _typed(seq, int), _typed(event_id, str))


def _load_mark(obj: Any) -> tuple[str, Mark]:
    agent, seq, count = _typed(obj, list)
    return _typed(agent, str), Mark(_typed(seq, int), _typed(count, int))


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(_typed(value, int))


def _stamp_source(obj: Any) -> tuple[Stamp, Source | None]:
    s = obj["stamp"]
    stamp = Stamp(_typed(s["hlc"], int), _typed(s["agent_id"], str), _typed(s["event_id"], str))
    src = obj["source"]
    if src is None:
        return stamp, None
    partition, offset = _typed(src, list)
    return stamp, (_typed(partition, int), _typed(offset, int))


def _load_consent(obj: Any) -> tuple[ConsentKey, ConsentRegister]:
    stamp, source = _stamp_source(obj)
    key = (PurposeOfUse(obj["purpose"]), DataClass(obj["data_class"]), _typed(obj["recipient"], str))
    start, end = _opt_int(obj["period_start_ms"]), _opt_int(obj["period_end_ms"])
    ref = obj["policy_ref"]
    policy_ref = None if ref is None else _typed(ref, str)
    directive = ConsentDirective(obj["directive"])
    return key, ConsentRegister(directive, start, end, stamp, source, policy_ref, _load_proxy(obj["proxy"]))


def _load_objection(obj: Any) -> tuple[ObjectionKey, ObjectionRegister]:
    stamp, source = _stamp_source(obj)
    exemptions = tuple(LegalBasis(b) for b in _typed(obj["exemptions"], list))
    active, site = _typed(obj["active"], bool), _typed(obj["site"], str)
    key = objection_key(ObjectionKind(obj["kind"]), site)  # the key is derived, so the format is unchanged
    flows = tuple(_typed(f, str) for f in _typed(obj["exempt_flows"], list))
    return key, ObjectionRegister(active, exemptions, stamp, site, source, flows, _load_proxy(obj["proxy"]))


def _load_shielding(obj: Any) -> ShieldingRegister | None:
    if obj is None:
        return None
    stamp, source = _stamp_source(obj)
    hides = tuple(HiddenField(h) for h in _typed(obj["hides"], list))
    if "reason" in obj:
        raise ValueError("a format-2 shielding register carries no reason")
    return ShieldingRegister(_typed(obj["active"], bool), hides, stamp, source)


def _load_quarantine(obj: Any) -> QuarantinedShielding | None:
    if obj is None:
        return None
    stamp, source = _stamp_source(obj)
    hides = tuple(HiddenField(h) for h in _typed(obj["hides"], list))
    return QuarantinedShielding(hides, _typed(obj["role"], str), _typed(obj["reason"], str), stamp, source)


def _load_deceased(obj: Any) -> DeceasedRegister | None:
    if obj is None:
        return None
    stamp, source = _stamp_source(obj)
    return DeceasedRegister(_typed(obj["deceased"], bool), stamp, source)
