"""The Pigeon server: transports, connections, dispatcher and one module per domain."""
