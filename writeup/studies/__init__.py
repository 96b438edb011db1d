"""The study's experiments on the real data: which DVC experiments make up each study (plan), reading
their MLflow records back (records), and the STUDIES.md page with its figures (report)."""
