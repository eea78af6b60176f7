"""`/api/v1/automations` (placeholder until the API lands)."""

from bot.api.openapi import Routes

routes = Routes()
