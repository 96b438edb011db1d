"""Helpers of the download stage: fetching, safe extraction and the two dataset layouts it reads."""
