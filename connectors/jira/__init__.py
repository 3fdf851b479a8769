"""Jira Cloud and Data Center connector (placeholder until the Jira connector lands)."""
