"""The chain as a service: its RPC server and HTTP client, its publisher, the bus, the wire
format, and the verifying subscriber that reads them back."""
