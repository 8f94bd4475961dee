"""Cost: energy (energy) and latency (timing) of a run, priced from the simulator's counted events and the
placement with the target's constants. Reads the simulator's counters and the mapping; nothing reads it but the
API and the reports."""
