"""Bundled run recipes, one YAML file per (env, algorithm); `agentrl validate NAME` finds them."""
