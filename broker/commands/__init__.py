"""Feature commands registered on ``consent-broker`` (each module exposes ``command``)."""
