"""Reporting: the one test-set scorer and its intervals, the comparison with the study's published figures
(each model described from its params), and figures."""
