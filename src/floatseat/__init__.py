"""floatseat: floating licences for Atlassian Confluence and Jira Data Center."""

__version__ = "0.1.0"
