"""v2: `/v2/products` with keyset cursors, exact money and predictions with probabilities."""
