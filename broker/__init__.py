"""The consent broker core: verifier, reconciler, decisions, audit and reports over Kafka."""

__version__ = "0.1.0"
__all__ = ["__version__"]
