"""The command line: each command parses, calls one function below it, and maps errors to
exit codes."""
