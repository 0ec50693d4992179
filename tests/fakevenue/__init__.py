"""Test support for the backfill tests: a fake of the exchanges on 127.0.0.1 (server, venues),
rows in the documented layouts (data), and a guard that fails any non-loopback connection."""
