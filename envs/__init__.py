"""agentrl's environments, registered under the `agentrl/` namespace on import.

Installed as `agentrl.envs` (the repository keeps the folder at its top level). Entry
points are strings, so an env's module is imported only when the env is made.
"""

from agentrl.registration import register

register("agentrl/Guess-v0", entry_point="agentrl.envs.guess:GuessEnv")
register("agentrl/Calculator-v0", entry_point="agentrl.envs.calculator:CalculatorEnv")
register("agentrl/WebShop-v0", entry_point="agentrl.envs.webshop:WebShopEnv")
register("agentrl/Search-v0", entry_point="agentrl.envs.search:SearchEnv")
register("agentrl/Code-v0", entry_point="agentrl.envs.code:CodeEnv")
