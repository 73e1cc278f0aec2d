-- Nothing changes on PostgreSQL: its name search (migration 0005) is an ordinary index
-- that the database keeps itself. This migration keeps the two backends' version
-- numbers alike; on SQLite, 0006 moves the indexing of new names from a trigger to the
-- store.
SELECT 1;
