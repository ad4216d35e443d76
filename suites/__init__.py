"""Built-in suite plugins: the routing benchmark rmroute-pairs-v1 and the evaluation suites and judges."""
