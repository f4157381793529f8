"""``python -m loadtests.core_stdlib_loop``: the core (``consent-broker -v run``) on the stdlib asyncio loop.

The bench's default (``python -m loadtests --core-loop asyncio``; recorded in the results) for now. The
product runs its core on uvloop (broker/cli.py). With uvloop 0.23, closing a TLS connection while the broker
is still answering a fetch waits for uvloop's 30 s SSL shutdown timeout (MagicStack/uvloop#471): every
changelog restore closes a consumer, so an assignment can take minutes, the member misses its session
timeout and rejoins, and the secure stack shows a rebalance storm the plaintext stack does not. Running
the same core on the stdlib loop measures the cost of TLS itself; ``--core-loop uvloop`` measures the core
as shipped.
"""

from __future__ import annotations

import asyncio
import logging

from broker.runtime import Core
from broker.settings import CoreSettings

__all__ = ["main"]


def main() -> None:
    logging.basicConfig(  # the same format as the CLI: the bench reads "stage=... assigned=[...]" from it
        level=logging.INFO, format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"
    )
    asyncio.run(Core(CoreSettings.load()).run_until_stopped())


if __name__ == "__main__":
    main()
