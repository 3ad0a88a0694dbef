"""Control state: the latest pause / resume / stop of every job, read from the control topic."""
