"""ChanCenter hub: the composition root. Channels, bots and handlers plug in by entry point."""
