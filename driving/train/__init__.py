"""The Lightning pieces: module, data module, callbacks, DAgger, checkpoint I/O, the CLI."""
