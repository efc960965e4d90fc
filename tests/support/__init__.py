"""Helpers shared by the end-to-end tests: real daemon processes, real clients, a cuttable proxy."""
