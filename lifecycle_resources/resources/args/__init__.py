"""The pydantic models of the resources' declared inputs, one module per kind. Only the providers import them
(lazily, in the provider host): a Pulumi program declaring resources imports neither them nor pydantic."""
