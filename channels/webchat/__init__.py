"""The web-chat channel: an embeddable widget talking to the hub over a websocket."""
