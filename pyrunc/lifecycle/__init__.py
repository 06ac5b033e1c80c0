"""The operations of the OCI lifecycle, one module per command."""
