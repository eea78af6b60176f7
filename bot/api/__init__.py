"""The REST API (`/api/v1`): one module a resource, shared params, the OpenAPI document."""
