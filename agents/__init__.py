"""Stream agents, one module per metric family, and the pure KPI logic they call.

`*_logic.py`, `ledger.py`, `family.py`, `watermark.py` and `config.py` are pure (no Faust):
the offline `cxpulse compute` runs them directly. The Faust wiring lives in the modules named
for what the agents do (`ingest`, `service_levels`, `feedback`, `commerce`), each registering
its agent and tables on the app it is given, so agents never import `pipeline`.
"""
