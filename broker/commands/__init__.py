"""Feature commands of ``consent-broker``: each module exposes ``command``, listed in ``broker.cli.COMMANDS``."""
