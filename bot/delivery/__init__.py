"""How a message goes out: the outbox relay, the sender, rate limits, fan-out, media."""
