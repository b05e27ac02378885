"""homolr: privacy-preserving horizontal logistic regression with a Paillier PS in an SGX enclave."""

from homolr.errors import HomolrError

__version__ = "0.1.0"

__all__ = ["HomolrError", "__version__"]
