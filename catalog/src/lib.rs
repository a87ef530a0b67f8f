//! Local dataset catalog (see the crate description).
