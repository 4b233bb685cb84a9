"""Pure analysis: Snapshot in, dataclasses out. No I/O here."""
