"""Views adapt HTTP to services: one module per area, each view small and explicit about access."""
