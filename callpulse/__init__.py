"""CallPulse: streaming call-event analytics for outbound predictive-dialer centres.

This package is the application: the CLI, the ``up`` supervisor and the embedded broker.
The contracts every layer shares live in :mod:`core`.
"""

__version__ = "0.1.0"
