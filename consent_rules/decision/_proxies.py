"""Until when a proxy's recorded permission binds (issue 14, proxies and children); internal to
:mod:`consent_rules.decision`. Who may record is :mod:`consent_rules.proxy` (the reconciler's check)."""

from __future__ import annotations

from consent_rules.decision.subject import ADULT_AGE, Subject
from consent_rules.proxy import HEALTH_AUTHORITIES
from consent_wire.codes import ProxyAuthorityKind
from consent_wire.model import ProxyAuthority

__all__ = ["permission_binds", "why_not_binding"]


def permission_binds(proxy: ProxyAuthority | None, subject: Subject) -> bool:
    """Whether a permission recorded under ``proxy`` still speaks for the person ``subject`` describes.

    Parental responsibility speaks for a child under 16 who is not Gillick competent (FLRA 1969 s8;
    Gillick [1986] AC 112), and only when the child's age is known; an attorney's or deputy's authority
    ends at the person's death. The person's own record (``proxy`` None) always binds.
    """
    if proxy is None:
        return True
    if subject.deceased:
        return False
    if proxy.authority is ProxyAuthorityKind.PARENTAL_RESPONSIBILITY:
        age = subject.age_years
        return age is not None and age < ADULT_AGE and not subject.gillick_competent
    return proxy.authority in HEALTH_AUTHORITIES


def why_not_binding(proxy: ProxyAuthority, subject: Subject) -> str:
    """One plain-English sentence on why a proxy's permission is not relied on."""
    if subject.deceased:
        return (
            f"The permission was recorded under {proxy.authority.value}, an authority that ended at the "
            "patient's death."
        )
    if proxy.authority is ProxyAuthorityKind.PARENTAL_RESPONSIBILITY:
        if subject.age_years is None:
            return "The permission was recorded by a parent, and the request does not give the patient's age."
        return (
            "The permission was recorded by a parent; the young person is 16 or over or Gillick competent, so "
            "only their own consent counts."
        )
    return f"The permission was recorded under {proxy.authority.value}, which gives no authority over health data."
