//! Deterministic port-block NAT.
