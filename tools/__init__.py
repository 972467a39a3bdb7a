"""Tools that environments offer the agent: `Tool` (a typed function with its JSON schema),
`Toolbox` (an env's tools, calls counted per tool), `ToolError`; and the tools
themselves: arithmetic (`calculator.calculate`), search (`search`: BM25 and a fake twin;
`retriever`: Search-R1's HTTP API, server and client); a code sandbox later.

Installed as `agentrl.tools` (the repository keeps the folder at its top level).
"""

from agentrl.tools.base import Tool, Toolbox, ToolError, ToolResult, ToolStats, ToolUnavailable

__all__ = ["Tool", "ToolError", "ToolResult", "ToolStats", "ToolUnavailable", "Toolbox"]
