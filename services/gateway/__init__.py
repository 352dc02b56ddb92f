"""Gateway: admin dashboard, patient portal, provider webhooks, health and metrics (aiohttp)."""
