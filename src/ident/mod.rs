//! RFC 1413 IDENT lookups.
