"""Rate-limited Kafka client logs: aiokafka logs each retry (every 100 ms against a paused broker), we keep one.

:func:`quiet_client_retries` is called by entry points after they configure logging: on every root handler
it installs :class:`RetryLogFilter`, which lets through one record per (logger, message template) per
interval from aiokafka's loggers and notes on it how many similar ones it held back (issue 13: hundreds of
``Failed fetch offsets`` lines during one broker pause).
"""

from __future__ import annotations

import logging
import os
import time

from consent_io.recovery import RateLimit

__all__ = ["DEBUG_LOGGERS_ENV", "RetryLogFilter", "debug_loggers", "debug_loggers_from_env", "quiet_client_retries"]

CLIENT_LOGGERS = ("aiokafka",)
# comma-separated logger names logged at DEBUG (diagnosing a fault: aiokafka's group coordinator, its
# transaction manager, the stages); nothing else changes level
DEBUG_LOGGERS_ENV = "CONSENT_DEBUG_LOGGERS"
RETRY_LOG_INTERVAL_S = 30.0  # one line per kind of client complaint per 30 s keeps a 60 s outage to a few lines


class RetryLogFilter(logging.Filter):
    def __init__(self, interval_s: float = RETRY_LOG_INTERVAL_S) -> None:
        super().__init__()
        self._limit = RateLimit(interval_s=interval_s)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(CLIENT_LOGGERS) or record.levelno < logging.INFO:
            return True
        held = self._limit.allow((record.name, str(record.msg)), time.monotonic())
        if held is None:
            return False
        if held:
            record.msg = f"{record.msg} (%d similar lines held back)"
            record.args = (*(record.args if isinstance(record.args, tuple) else (record.args,)), held)
        return True


def quiet_client_retries(root: logging.Logger | None = None) -> None:
    """Install one :class:`RetryLogFilter` on each handler of ``root`` (default: the root logger)."""
    root = root or logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RetryLogFilter) for f in handler.filters):
            handler.addFilter(RetryLogFilter())


def debug_loggers(spec: str) -> list[str]:
    """Set each logger named in ``spec`` (comma-separated) to DEBUG; returns the names set."""
    names = [name.strip() for name in spec.split(",") if name.strip()]
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    return names


def debug_loggers_from_env() -> list[str]:
    """:func:`debug_loggers` from the ``CONSENT_DEBUG_LOGGERS`` environment variable (unset: none)."""
    return debug_loggers(os.environ.get(DEBUG_LOGGERS_ENV, ""))
