"""Raw deliveries -> bronze -> silver -> gold: the transforms and rules of each layer (pure) and their flows."""
