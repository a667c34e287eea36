"""Key and certificate generation (cryptography): an adapter both the operator and the runtime use."""
