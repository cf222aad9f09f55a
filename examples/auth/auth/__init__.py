"""The example auth service package."""
