"""Built-in router plugins: baselines, the linear bandit routers (BayesianRouter, LASeR), the
feedback normalizers and the context featurizers; ``BaseRouter`` (:mod:`rmroute.routers.base`) for plugin authors."""
