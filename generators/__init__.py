"""Built-in generator plugins: policy sampling with transformers or vLLM."""
