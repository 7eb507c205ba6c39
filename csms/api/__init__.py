"""The operator HTTP API (aiohttp): commands to chargers, the audit log, health and metrics.

Transport only: every rule lives in csms.services.
"""
