"""What several components of the recipe pipeline share.

Settings, the event schema, storage models, topic names, Kafka helpers (lag), the
embedded broker, the local Discord gateway and the stack supervisor. This package
imports no component (``backend``, ``consumer``, ``bot``, ``tui``).
"""
