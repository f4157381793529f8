"""The shared rules, pure: the consent merge, the sharing decision, shielding authority and backoff.

Contract (issue 10, points 1-2). Imported normally by both the edge agent (offline decisions) and the
core. Imports only ``consent_wire`` and the standard library (plus orjson); never an I/O library
(aiokafka, aiomqtt, aiohttp, sqlite3, prometheus_client), never ``broker`` or ``edge_agent``.

Import graph: consent_wire <- consent_rules <- {edge_agent, broker}; consent_io <- {edge_agent, broker};
``edge_agent`` never imports ``broker``; ``broker`` imports ``edge_agent`` only in ``broker/demo/``.

Modules (import the names from them; each declares its public surface in ``__all__``):

- :mod:`consent_rules.state` - per-patient registers, the merge (a join) and the state's canonical bytes.
- :mod:`consent_rules.reconcile` - the reconciler's core: verified events in, state records out.
- :mod:`consent_rules.hierarchy` - the purpose-of-use hierarchy (HL7 ActReason), one table.
- :mod:`consent_rules.decision` - the sharing decision, its JSON request parser and its answer.
- :mod:`consent_rules.shielding` - who may set or clear a shielding flag.
- :mod:`consent_rules.proxy` - who may record a consent or objection on a person's behalf.
- :mod:`consent_rules.backoff` - exponential backoff with full jitter.
- :mod:`consent_rules.replica_feed` - the core-signed state/shielding records sent to sites, and their checks.
"""

from consent_rules import backoff, decision, hierarchy, proxy, reconcile, replica_feed, shielding, state

__all__ = ["backoff", "decision", "hierarchy", "proxy", "reconcile", "replica_feed", "shielding", "state"]
