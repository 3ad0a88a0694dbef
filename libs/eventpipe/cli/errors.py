class UsageError(Exception):
    """Bad input from the user: printed as one clear line, exit code 2."""
