"""The stage runner: consume, gate on control state, process, produce, commit."""
