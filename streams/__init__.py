"""Where metrics are computed: the Faust app (validate -> minute buckets -> land)."""
