"""CallPulse: streaming call-event analytics for outbound predictive-dialer centres.

The shared core lives here: the event contract (:mod:`callpulse.schema`), the one
place metrics are defined (:mod:`callpulse.metrics`), time-slot rules
(:mod:`callpulse.slots`), configuration (:mod:`callpulse.config`) and the CLI.
"""

__version__ = "0.1.0"
