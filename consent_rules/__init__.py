"""The shared rules, pure: the consent merge, the sharing decision, shielding authority and backoff.

Contract (issue 10, points 1-2). Imported normally by both the edge agent (offline decisions) and the
core. Imports only ``consent_wire`` and the standard library (plus orjson); never an I/O library
(aiokafka, aiomqtt, aiohttp, sqlite3, prometheus_client), never ``broker`` or ``edge_agent``.

Import graph: consent_wire <- consent_rules <- {edge_agent, broker}; consent_io <- {edge_agent, broker};
``edge_agent`` never imports ``broker``; ``broker`` imports ``edge_agent`` only in ``broker/demo/``.
"""
