"""What the console's HTTP API shares with the CLI: its tokens (the CLI's `ps` says where the
token is; the console checks it)."""
