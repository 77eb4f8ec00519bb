"""The phase contract, change records, the runner and the reporter protocol."""
