//! The file backend against the conformance suite, each test in a fresh
//! temporary spool.

use switchboard_spool::store::file::FileStores;

fn fresh() -> (tempfile::TempDir, switchboard_spool::store::Stores) {
    let dir = tempfile::tempdir().unwrap();
    let stores = FileStores::open(dir.path().join("spool")).unwrap();
    (dir, stores)
}

switchboard_spool::conformance_tests!(fresh());
