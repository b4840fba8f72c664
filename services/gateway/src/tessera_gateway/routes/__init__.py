"""The public operations, one module per upstream and API version."""
