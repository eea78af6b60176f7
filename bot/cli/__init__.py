"""The `chancenter` command."""
