"""Storage: SQLModel tables, transactions, queries and row claims."""
