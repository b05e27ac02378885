"""homolr.enclave."""
