"""v1: `/v1/products` with offset pages and float prices, reviews, inventory, enriched."""
