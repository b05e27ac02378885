"""homolr.protocol."""
