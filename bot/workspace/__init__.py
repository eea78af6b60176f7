"""The glossary's objects and their rules: contacts, conversations, views, shortcuts, people."""
