"""Computation over frames: pacing advice, score calibration, best time to call and reports.
The rows come from warehouse.queries; nothing here writes SQL or imports the worker or pages."""
