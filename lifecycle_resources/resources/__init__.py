"""One module per Pulumi resource kind, plus the shared provider base and the program registry."""
