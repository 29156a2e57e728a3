//! The PostgreSQL backend against the conformance suite, each test in a
//! fresh database of one scratch cluster (see `scratch.rs`).

use switchboard_store_postgres::scratch::ScratchCluster;
use switchboard_store_postgres::PgStores;

async fn fresh() -> ((), switchboard_spool::store::Stores) {
    let url = ScratchCluster::shared().database();
    let pg = PgStores::open(&url, 4)
        .await
        .expect("opening the scratch database");
    ((), pg.stores())
}

switchboard_spool::conformance_tests!(fresh().await);
