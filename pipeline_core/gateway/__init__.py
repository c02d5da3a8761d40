"""The local Discord gateway: drive a real discord.py bot without Discord's servers.

See :mod:`pipeline_core.gateway.local`. Importing this package imports discord.py.
"""

from pipeline_core.gateway.local import (
    Exchange,
    LocalGateway,
    LocalGatewayError,
    Outbound,
)
from pipeline_core.gateway.slash import SlashInputError

__all__ = [
    "Exchange",
    "LocalGateway",
    "LocalGatewayError",
    "Outbound",
    "SlashInputError",
]
