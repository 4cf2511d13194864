"""Coordination between instances: who may write DNS, and where operator intents live."""
