//! What the conformance suite cannot say about the PostgreSQL backend:
//! errors when the server is away or a row is damaged, the schema's
//! versions, and data that outlives the connections that wrote it.

use switchboard_spool::store::{AccountRef, StoreError};
use switchboard_store_postgres::scratch::ScratchCluster;
use switchboard_store_postgres::{schema, PgStores};

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_says_where() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://switchboard@127.0.0.1:{port}/none?sslmode=disable");
    match PgStores::open(&url, 2).await {
        Err(StoreError::Unavailable(text)) => {
            assert!(text.contains(&format!("127.0.0.1:{port}/none")), "{text}");
            assert!(text.contains("cannot connect"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    for bad in [
        "postgres://a@b:notaport/x",
        "postgres://a@127.0.0.1/x?sslmode=require",
    ] {
        assert!(
            matches!(PgStores::open(bad, 2).await, Err(StoreError::Invalid(_))),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn the_schema_is_applied_once_and_a_newer_one_is_refused() {
    let cluster = ScratchCluster::shared();
    let url = cluster.database();
    let pg = PgStores::connect(&url, 2).await.unwrap();
    assert_eq!(pg.schema_version().await.unwrap(), 0);
    let m = pg.migrate_schema().await.unwrap();
    assert_eq!((m.from, m.to), (0, schema::CURRENT));
    let m = pg.migrate_schema().await.unwrap();
    assert_eq!((m.from, m.to), (schema::CURRENT, schema::CURRENT));
    // Several nodes starting at once take turns.
    let other = PgStores::connect(&url, 2).await.unwrap();
    let (a, b) = tokio::join!(pg.migrate_schema(), other.migrate_schema());
    assert_eq!(a.unwrap().from, schema::CURRENT);
    assert_eq!(b.unwrap().from, schema::CURRENT);

    let newer = schema::CURRENT + 1;
    cluster.psql(
        ScratchCluster::name_of(&url),
        &format!("INSERT INTO schema_version VALUES ({newer})"),
    );
    match PgStores::open(&url, 2).await {
        Err(StoreError::Unavailable(text)) => assert!(text.contains("newer release"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_damaged_row_is_corrupt_and_names_its_table() {
    let cluster = ScratchCluster::shared();
    let url = cluster.database();
    let stores = PgStores::open(&url, 2).await.unwrap().stores();
    let alice = AccountRef::new("example.org", "alice");
    stores.accounts.create(&alice, vec![]).await.unwrap();
    let doc = switchboard_xml::Element::new("vcard", switchboard_xml::ns::SPOOL);
    stores.account_data.put(&alice, doc).await.unwrap();
    cluster.psql(
        ScratchCluster::name_of(&url),
        "UPDATE account_data SET doc = '<vcard xmlns=''urn:switchboard:spool:1''>'",
    );
    match stores.account_data.get(&alice, "vcard").await {
        Err(StoreError::Corrupt(text)) => assert!(text.contains("account_data"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn what_was_written_is_there_for_the_next_connection() {
    let url = ScratchCluster::shared().database();
    let alice = AccountRef::new("example.org", "alice");
    {
        let stores = PgStores::open(&url, 1).await.unwrap().stores();
        stores.accounts.create(&alice, vec![]).await.unwrap();
        let m = switchboard_spool::store::conformance::message("bob@example.org", "later");
        stores.offline.append(&alice, &m).await.unwrap();
    }
    let stores = PgStores::open(&url, 1).await.unwrap().stores();
    let got = stores.offline.list(&alice).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, 1);
}

#[tokio::test]
async fn connections_the_server_dropped_are_replaced() {
    let cluster = ScratchCluster::shared();
    let url = cluster.database();
    let stores = PgStores::open(&url, 2).await.unwrap().stores();
    let alice = AccountRef::new("example.org", "alice");
    stores.accounts.create(&alice, vec![]).await.unwrap();
    // What a restart of PostgreSQL does to the pool's connections.
    cluster.psql(
        ScratchCluster::name_of(&url),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    // A call caught on a dying connection (at most one per connection of
    // the pool) is Unavailable, never anything that looks like an answer;
    // the ones after it work.
    for _ in 0..2 {
        let r = stores.accounts.exists(&alice).await;
        assert!(
            matches!(r, Ok(true) | Err(StoreError::Unavailable(_))),
            "{r:?}"
        );
    }
    for _ in 0..3 {
        assert_eq!(stores.accounts.exists(&alice).await, Ok(true));
    }
}
