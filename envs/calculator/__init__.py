"""Arithmetic with a calculator tool: the smallest tool-using env."""

from agentrl.envs.calculator.env import CalculatorEnv

__all__ = ["CalculatorEnv"]
