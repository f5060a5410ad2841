//! Server-side assignors: `uniform` (sticky, balanced) and `range` (being written).
