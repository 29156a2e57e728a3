//! Logging with tracing: to stderr, and to the configured log file, which
//! SIGHUP reopens so that logrotate can move it away.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// The log file, reopenable in place.
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    pub fn open(path: &Path) -> Result<LogFile, String> {
        let file =
            open(path).map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
        Ok(LogFile {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Reopens the file at the same path (after logrotate moved it).
    pub fn reopen(&self) -> Result<(), String> {
        let f = open(&self.path)
            .map_err(|e| format!("cannot reopen the log file {}: {e}", self.path.display()))?;
        *self.file.lock().expect("log lock") = f;
        Ok(())
    }
}

pub struct LogWriter(Arc<Mutex<File>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().expect("log lock").flush()
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LogWriter(self.file.clone())
    }
}

/// Installs the global subscriber. `level` is a tracing filter; `-D` forces
/// debug for Switchboard's own crates.
pub fn init(level: &str, debug: bool, file: Option<&LogFile>) {
    let directive = if debug {
        format!("{level},switchboard=debug,switchboard_core=debug,switchboard_service=debug")
    } else {
        level.to_string()
    };
    let filter = || EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter());
    let file_layer = file.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(f.clone())
            .with_filter(filter())
    });
    tracing_subscriber::registry()
        .with(stderr)
        .with(file_layer)
        .init();
}
