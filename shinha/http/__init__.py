"""The HTTP layer: an aiohttp server with auth and validation, a client with timeouts."""
