"""homolr.crypto."""
