"""homolr.server."""
