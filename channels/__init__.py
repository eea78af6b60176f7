"""Messaging channels: one module per platform, each a `channels.base.Channel`."""
