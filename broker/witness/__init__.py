"""The audit witness process (``consent-broker witness``) and the client the audit appender uses to reach it.

- :mod:`broker.witness.store`: the witness's state file (latest cosigned checkpoint per origin);
- :mod:`broker.witness.server`: the HTTPS ``add-checkpoint`` endpoint (C2SP tlog-witness) with mTLS;
- :mod:`broker.witness.client`: ``add_checkpoint`` over HTTPS with the caller's certificate.

The rules themselves are pure and live in :mod:`broker.audit.witness`.
"""

from broker.witness.client import WitnessClient, WitnessRefusedError
from broker.witness.server import WitnessServer
from broker.witness.store import StateFile

__all__ = ["StateFile", "WitnessClient", "WitnessRefusedError", "WitnessServer"]
