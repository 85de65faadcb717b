"""Readers of what Kubescape writes into a cluster: pure functions, no Django, no network."""
