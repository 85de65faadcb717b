"""Helpers of the test suite: API double, sandbox world, real workers, processes, VEX model."""
