"""Hugging Face model plumbing that the generator backends and the verifiers both use, and neither owns:
loading (hub ids, local dirs, GGUF, the embedded SmolLM2; devices and dtypes) and the token-prefix LRU
behind their KV caches."""
