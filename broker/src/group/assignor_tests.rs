//! Tests of the assignors.
