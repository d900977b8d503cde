"""The seat engine: events through the policy into the ledger, and the outbox to the directory."""
