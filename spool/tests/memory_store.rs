//! The in-memory backend against the conformance suite.

use switchboard_spool::store::memory::MemoryStores;

switchboard_spool::conformance_tests!(((), MemoryStores::new()));
