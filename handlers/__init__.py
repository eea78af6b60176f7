"""What happens to a message: routing to a flow, an agent or the bot."""
