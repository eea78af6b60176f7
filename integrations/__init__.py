"""Third-party products (Dialogflow, Slack, outgoing webhooks) and the built-in bot."""
