"""homolr.worker."""
