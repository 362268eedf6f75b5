"""needle-service: a REST service that trains neural networks on demand, on needle."""
