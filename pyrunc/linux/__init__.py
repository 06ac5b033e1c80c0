"""The thin kernel layer: calls and errors, no policy."""
