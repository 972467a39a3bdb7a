"""Tool backends that environments call: arithmetic now; retrieval and a code sandbox later.

Installed as `agentrl.tools` (the repository keeps the folder at its top level).
"""
