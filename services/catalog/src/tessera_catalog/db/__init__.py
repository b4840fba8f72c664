"""PostgreSQL access: migrations, seed data and queries."""
