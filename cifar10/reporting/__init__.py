"""Reporting: the one test-set scorer, the comparison with the study's published figures, and figures."""
