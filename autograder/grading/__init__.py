"""The autograder: execute in a sandbox, export facts, check in a clean process, score, report."""
