"""Configuration: one schema that declares every key once, loading and validation of the YAML
file, and the typed settings each component receives."""
