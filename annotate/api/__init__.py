"""REST API (DRF): one APIView per endpoint with nested Input/Output serializers; logic in services."""
