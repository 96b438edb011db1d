"""Reporting: the one test-set scorer, the comparison with the study's published figures, figures,
and the transfer study's page (TRANSFER.md)."""
