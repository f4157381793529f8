"""Proxy authority: who may record a consent or objection on a person's behalf, and until when a
proxy's permission binds (pure; issue 14, proxies and children).

Record time (the reconciler, :func:`proxy_rejection`): a consent or objection carrying a
:class:`~consent_wire.model.ProxyAuthority` is applied only when that authority extends to decisions
about the person's health and care information:

- PARENTAL_RESPONSIBILITY (Children Act 1989 s3: "all the rights, duties, powers, responsibilities
  and authority which by law a parent of a child has");
- LPA_HEALTH_WELFARE, a lasting power of attorney for personal welfare (Mental Capacity Act 2005
  s9(1)(a)) registered with the Office of the Public Guardian (s9(2)(b)): its registration
  reference is required;
- DEPUTY_PERSONAL_WELFARE, a deputy the Court of Protection appointed for personal welfare (s16(2)(b),
  s17): the order's reference is required.

A lasting power of attorney for property and financial affairs (s9(1)(b)) or a property and affairs
deputy (s18) gives no authority over health and care decisions, and an authority a later schema version
added (UNRECOGNISED here) is not relied on: such events are rejected (dead-lettered) with
``PROXY_AUTHORITY_NOT_FOR_HEALTH``; a missing reference with ``PROXY_REFERENCE_MISSING``.

Decision time (``consent_rules.decision``): a proxy's *permission* binds only while the authority does.
Parental responsibility does not speak for a young person of 16 or over (Family Law Reform Act 1969
s8) or a Gillick-competent child (Gillick v West Norfolk and Wisbech AHA [1986] AC 112), nor for a child
of unknown age; an attorney's or deputy's authority ends at death. A proxy's *refusal* stays in force
(the protective reading): the person's own later record replaces it.
"""

from __future__ import annotations

from consent_wire.codes import ProxyAuthorityKind
from consent_wire.model import ProxyAuthority

__all__ = [
    "HEALTH_AUTHORITIES",
    "REASON_PROXY_AUTHORITY_NOT_FOR_HEALTH",
    "REASON_PROXY_REFERENCE_MISSING",
    "proxy_rejection",
]

K = ProxyAuthorityKind
REASON_PROXY_AUTHORITY_NOT_FOR_HEALTH = "PROXY_AUTHORITY_NOT_FOR_HEALTH"
REASON_PROXY_REFERENCE_MISSING = "PROXY_REFERENCE_MISSING"
# The authorities that extend to health and care decisions (module docstring).
HEALTH_AUTHORITIES = frozenset({K.PARENTAL_RESPONSIBILITY, K.LPA_HEALTH_WELFARE, K.DEPUTY_PERSONAL_WELFARE})
# Registered instruments: the OPG registration (MCA 2005 s9(2)(b), sch 1) or the court's order (s16).
_REGISTERED = frozenset({K.LPA_HEALTH_WELFARE, K.DEPUTY_PERSONAL_WELFARE})


def proxy_rejection(proxy: ProxyAuthority | None) -> str | None:
    """The reason a consent or objection recorded under ``proxy`` must not be applied, else ``None``."""
    if proxy is None:
        return None
    if proxy.authority not in HEALTH_AUTHORITIES:
        return REASON_PROXY_AUTHORITY_NOT_FOR_HEALTH
    if proxy.authority in _REGISTERED and not proxy.reference.strip():
        return REASON_PROXY_REFERENCE_MISSING
    return None
