"""Pure data: the events CX Pulse reads, how they are validated, and the records it writes.

Nothing here imports Faust or the app: agents and pipeline depend on schemas, never the reverse.
"""
