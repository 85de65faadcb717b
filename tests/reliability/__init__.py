"""Tests of the reliability app alone: they also run in a project without the analysis app."""
