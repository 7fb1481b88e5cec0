"""FAQ knowledge base: YAML loading and validation, matching, hot reload."""
