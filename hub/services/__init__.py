"""Application services: transactions that call the domain and the tables."""
