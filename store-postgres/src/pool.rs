//! A small pool of connections, written here rather than taken from
//! `deadpool-postgres`: the stores need only "lend me a connection, give
//! it back unless it broke", plus one thing a general pool does not do
//! for them — each connection keeps the statements it has prepared, so a
//! store call costs one round trip, not a parse and then an execute.
//!
//! At most `size` connections exist; a caller waits for one when all are
//! lent. Connections are opened lazily and replaced when they break, so a
//! PostgreSQL restart costs the calls in flight (`Unavailable`) and
//! nothing after it. A connection lent while a transaction was open and
//! dropped before its end (a cancelled future) is closed, not returned:
//! closing it is what rolls the transaction back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use switchboard_spool::store::{StoreError, StoreResult};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::errors::map;

/// One connection and the statements prepared on it.
struct Pooled {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

pub(crate) struct Pool {
    config: tokio_postgres::Config,
    /// Where it connects, for messages (never the password).
    pub(crate) target: String,
    idle: Mutex<Vec<Pooled>>,
    permits: Semaphore,
}

impl Pool {
    pub(crate) fn new(mut config: tokio_postgres::Config, size: usize) -> Pool {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("switchboard");
        let target = describe(&config);
        Pool {
            config,
            target,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
        }
    }

    /// A connection, opened if none is idle.
    pub(crate) async fn get(&self) -> StoreResult<Conn<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the connection pool is closed".into()))?;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                match idle.pop() {
                    Some(p) if p.client.is_closed() => continue,
                    other => break other,
                }
            }
        };
        let pooled = match reused {
            Some(p) => p,
            None => Pooled {
                client: self.connect().await?,
                statements: HashMap::new(),
            },
        };
        Ok(Conn {
            pooled: Some(pooled),
            pool: self,
            in_transaction: false,
            _permit: permit,
        })
    }

    async fn connect(&self) -> StoreResult<Client> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {}: {e}",
                self.target
            ))
        })?;
        let target = self.target.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("PostgreSQL connection to {target} ended: {e}");
            }
        });
        Ok(client)
    }
}

/// `host:port/dbname as user`, for messages.
fn describe(c: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{} as {}",
        c.get_dbname().unwrap_or("(default database)"),
        c.get_user().unwrap_or("(default user)")
    )
}

/// A lent connection; back to the pool when dropped.
pub(crate) struct Conn<'a> {
    pooled: Option<Pooled>,
    pool: &'a Pool,
    in_transaction: bool,
    _permit: SemaphorePermit<'a>,
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.pooled.take() {
            if !self.in_transaction && !p.client.is_closed() {
                let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.push(p);
            }
        }
    }
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl Conn<'_> {
    fn pooled(&mut self) -> &mut Pooled {
        self.pooled.as_mut().expect("present until dropped")
    }

    /// The statement for `sql`, prepared on this connection once.
    async fn statement_raw(
        &mut self,
        sql: &'static str,
    ) -> Result<Statement, tokio_postgres::Error> {
        let p = self.pooled();
        if let Some(s) = p.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = p.client.prepare(sql).await?;
        p.statements.insert(sql, s.clone());
        Ok(s)
    }

    async fn statement(&mut self, sql: &'static str) -> StoreResult<Statement> {
        self.statement_raw(sql)
            .await
            .map_err(|e| map("preparing a statement", e))
    }

    pub(crate) async fn query(
        &mut self,
        what: &str,
        sql: &'static str,
        params: Params<'_>,
    ) -> StoreResult<Vec<Row>> {
        let s = self.statement(sql).await?;
        self.pooled()
            .client
            .query(&s, params)
            .await
            .map_err(|e| map(what, e))
    }

    pub(crate) async fn query_opt(
        &mut self,
        what: &str,
        sql: &'static str,
        params: Params<'_>,
    ) -> StoreResult<Option<Row>> {
        Ok(self.query(what, sql, params).await?.into_iter().next())
    }

    pub(crate) async fn execute(
        &mut self,
        what: &str,
        sql: &'static str,
        params: Params<'_>,
    ) -> StoreResult<u64> {
        self.execute_raw(sql, params)
            .await
            .map_err(|e| map(what, e))
    }

    /// As [`Conn::execute`], with PostgreSQL's error kept for the caller
    /// to look at.
    pub(crate) async fn execute_raw(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        let s = self.statement_raw(sql).await?;
        self.pooled().client.execute(&s, params).await
    }

    /// Several statements without parameters, as one string.
    pub(crate) async fn batch(&mut self, what: &str, sql: &str) -> StoreResult<()> {
        self.pooled()
            .client
            .batch_execute(sql)
            .await
            .map_err(|e| map(what, e))
    }

    /// Starts a transaction; [`Conn::commit`] ends it, and dropping the
    /// connection before that rolls it back.
    pub(crate) async fn begin(&mut self) -> StoreResult<()> {
        self.in_transaction = true;
        self.batch("starting a transaction", "BEGIN").await
    }

    /// Starts a read-only transaction on one snapshot, for reads that
    /// must agree with each other.
    pub(crate) async fn begin_snapshot(&mut self) -> StoreResult<()> {
        self.in_transaction = true;
        self.batch(
            "starting a transaction",
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        )
        .await
    }

    /// Commits (durable on return, under `synchronous_commit`).
    pub(crate) async fn commit(&mut self) -> StoreResult<()> {
        self.batch("committing", "COMMIT").await?;
        self.in_transaction = false;
        Ok(())
    }
}

impl Conn<'_> {
    /// Ends a transaction without writing anything (an expected refusal
    /// found half-way, such as a missing account).
    pub(crate) async fn rollback(&mut self) -> StoreResult<()> {
        self.batch("rolling back", "ROLLBACK").await?;
        self.in_transaction = false;
        Ok(())
    }
}
