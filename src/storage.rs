//! The storage backend the config chooses (`<storage>`), opened once,
//! and `switchboard storage …`: the PostgreSQL schema, and copying
//! everything stored from one backend to the other.

use std::path::Path;

use switchboard_config::{Config, StorageConfig};
use switchboard_spool::store::copy::{copy_all, Copied, Inventory};
use switchboard_spool::store::file::FileStores;
use switchboard_spool::store::Stores;

use crate::cli::{BackendKind, StorageCommand};

/// An open backend, with what it can list of itself.
pub enum Backend {
    Spool(FileStores),
    #[cfg(feature = "postgres")]
    Postgres(switchboard_store_postgres::PgStores),
}

impl Backend {
    pub fn stores(&self) -> Stores {
        match self {
            Backend::Spool(f) => f.stores(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(p) => p.stores(),
        }
    }

    fn inventory(&self) -> &dyn Inventory {
        match self {
            Backend::Spool(f) => f,
            #[cfg(feature = "postgres")]
            Backend::Postgres(p) => p,
        }
    }

    /// Where it is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Backend::Spool(f) => format!("the spool {}", f.root().display()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(p) => format!("PostgreSQL {}", p.target()),
        }
    }
}

fn spool(dir: &Path) -> Result<Backend, String> {
    FileStores::open_backend(dir)
        .map(Backend::Spool)
        .map_err(|e| format!("cannot open the spool {}: {e}", dir.display()))
}

/// The first line of a password file.
#[cfg(feature = "postgres")]
fn password(file: Option<&Path>) -> Result<Option<String>, String> {
    let Some(file) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read the password file {}: {e}", file.display()))?;
    Ok(Some(text.lines().next().unwrap_or("").to_string()))
}

#[cfg(feature = "postgres")]
async fn postgres(
    url: &str,
    connections: usize,
    password_file: Option<&Path>,
    migrate: bool,
) -> Result<Backend, String> {
    use switchboard_store_postgres::PgStores;
    let password = password(password_file)?;
    let opened = if migrate {
        PgStores::open_with(url, connections, password.as_deref()).await
    } else {
        PgStores::connect_with(url, connections, password.as_deref()).await
    };
    opened
        .map(Backend::Postgres)
        .map_err(|e| format!("cannot open the PostgreSQL store: {e}"))
}

#[cfg(not(feature = "postgres"))]
const NO_POSTGRES: &str =
    "this build of switchboard has no PostgreSQL backend (built without the feature \"postgres\")";

/// The backend `<storage>` names, its schema brought up to date.
pub async fn open(config: &Config) -> Result<Backend, String> {
    match &config.storage {
        StorageConfig::Spool => spool(&config.spool.dir),
        #[cfg(feature = "postgres")]
        StorageConfig::Postgres(p) => {
            postgres(&p.url, p.connections, p.password_file.as_deref(), true).await
        }
        #[cfg(not(feature = "postgres"))]
        StorageConfig::Postgres(_) => Err(NO_POSTGRES.into()),
    }
}

/// One side of `storage migrate`: the spool of `<spool dir>`, or the
/// database of `<storage url>` (or `--url`).
async fn side(config: &Config, kind: BackendKind, url: Option<&str>) -> Result<Backend, String> {
    match kind {
        BackendKind::Spool => spool(&config.spool.dir),
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => match (url, &config.storage) {
            (Some(url), StorageConfig::Postgres(p)) => {
                postgres(url, p.connections, p.password_file.as_deref(), true).await
            }
            (Some(url), StorageConfig::Spool) => postgres(url, 4, None, true).await,
            (None, StorageConfig::Postgres(p)) => {
                postgres(&p.url, p.connections, p.password_file.as_deref(), true).await
            }
            (None, StorageConfig::Spool) => Err(
                "no database to copy to or from: give --url postgres://… or set \
                 <storage backend=\"postgres\" url=…> in the config"
                    .into(),
            ),
        },
        #[cfg(not(feature = "postgres"))]
        BackendKind::Postgres => {
            let _ = url;
            Err(NO_POSTGRES.into())
        }
    }
}

fn report(c: &Copied) -> String {
    format!(
        "{} accounts, {} roster items, {} offline messages, {} account documents, \
         {} host documents, {} archive entries, {} service values, {} blobs",
        c.accounts,
        c.roster_items,
        c.offline_messages,
        c.account_documents,
        c.host_documents,
        c.archive_entries,
        c.service_values,
        c.blobs
    )
}

/// `switchboard storage …`.
pub async fn run(cmd: StorageCommand, config: &Config) -> Result<(), String> {
    match cmd {
        StorageCommand::MigrateSchema { url } => {
            #[cfg(feature = "postgres")]
            {
                let Backend::Postgres(pg) =
                    side(config, BackendKind::Postgres, url.as_deref()).await?
                else {
                    unreachable!("a postgres side is PostgreSQL");
                };
                // `side` has migrated already; say where it stands.
                let version = pg.schema_version().await.map_err(|e| e.to_string())?;
                println!(
                    "PostgreSQL {}: schema version {version} (this release writes {})",
                    pg.target(),
                    switchboard_store_postgres::schema::CURRENT
                );
                Ok(())
            }
            #[cfg(not(feature = "postgres"))]
            {
                let _ = (url, config);
                Err(NO_POSTGRES.into())
            }
        }
        StorageCommand::Migrate { from, to, url } => {
            if from == to {
                return Err("--from and --to name the same backend".into());
            }
            let source = side(config, from, url.as_deref()).await?;
            let destination = side(config, to, url.as_deref()).await?;
            let copied = copy_all(&source.stores(), source.inventory(), &destination.stores())
                .await
                .map_err(|e| {
                    format!(
                        "copying from {} to {} stopped: {e}",
                        source.describe(),
                        destination.describe()
                    )
                })?;
            #[cfg(feature = "postgres")]
            if let Backend::Postgres(pg) = &destination {
                pg.analyze().await.map_err(|e| e.to_string())?;
            }
            println!(
                "copied from {} to {}: {}",
                source.describe(),
                destination.describe(),
                report(&copied)
            );
            if copied.unnamed.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "not copied, since no name could be read from them:\n  {}",
                    copied.unnamed.join("\n  ")
                ))
            }
        }
    }
}
