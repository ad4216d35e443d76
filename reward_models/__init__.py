"""Built-in reward-model plugins: Hugging Face backends, the remote client, heuristics and the math verifier."""
