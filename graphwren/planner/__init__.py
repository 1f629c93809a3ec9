"""Expressions -> optimized logical plan -> physical plan of stages -> explain()."""
