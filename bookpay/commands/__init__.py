"""The CLI's command groups: thin adapters that parse, call the core, and print."""
