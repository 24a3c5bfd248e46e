"""HTTP: the aiohttp app, its problem details and authentication, the API handlers, the
probes and metrics, the public site and its search page, the OpenAPI document."""
