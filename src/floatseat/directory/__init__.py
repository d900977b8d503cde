"""The Atlassian side: the `Directory` port, its in-memory fake, and (later) the REST clients."""
