"""Shim for tools that want a setup.py (Dataflow's --setup_file); metadata is in setup.cfg."""

from setuptools import setup

setup()
