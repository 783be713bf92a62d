"""Request and response bodies, one module per resource (what the OpenAPI document shows)."""
