"""Where data enters: the dialer simulator and dialer adapters, publishing with kafka-python."""
