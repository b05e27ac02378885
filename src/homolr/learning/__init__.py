"""homolr.learning."""
