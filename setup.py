"""Package map for setuptools: `envs/`, `tools/` and `configs/` install under `agentrl.`.

The repository keeps these folders at its top level, but a wheel that shipped them as
top-level `envs` or `tools` packages would collide with other distributions. The
sub-package list is computed here because `pyproject.toml` cannot express "find the
packages under this folder and prefix them".
"""

from setuptools import find_packages, setup

REMAPPED = {"envs": "agentrl.envs", "tools": "agentrl.tools", "configs": "agentrl.configs"}

packages = find_packages(include=["agentrl", "agentrl.*"])
package_dir = {"agentrl": "agentrl"}
for folder, name in REMAPPED.items():
    package_dir[name] = folder
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(where=folder)]

setup(packages=packages, package_dir=package_dir)
