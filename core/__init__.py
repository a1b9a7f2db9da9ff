"""The contracts every layer imports: the event schema, configuration and its defaults, the one
place metrics are defined, time slots, the alert state machine, privacy rules, topic names,
and the hand-off types between the worker and landing. Nothing here imports another layer."""
