"""Generated gRPC wire modules (scripts/gen-wire.sh); do not edit by hand."""
