//! The `log` crate's backend, writing through [`abi::log`].
//!
//! Replaces the SDK's logger, which `unwrap()`s the result of every log call
//! and installs a panic hook that does the same. Nothing here can panic.

use super::abi::{self, Level};

struct HostLogger;

static LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        abi::log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

/// Installs the logger (at info until the host's level is known) and a panic
/// hook that reports a panic, should one ever happen, as a Critical line. No
/// host call: safe in `_initialize`.
pub fn install() {
    // Fails only if a logger is already installed, which is then kept.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
    std::panic::set_hook(Box::new(|info| {
        abi::log(Level::Critical, &format!("canary-gate: {info}"));
    }));
}

/// Follows Envoy's log level for this plugin, so disabled lines cost nothing.
pub fn follow_host_level() {
    let filter = match abi::log_level() {
        Level::Trace => log::LevelFilter::Trace,
        Level::Debug => log::LevelFilter::Debug,
        Level::Info => log::LevelFilter::Info,
        Level::Warn => log::LevelFilter::Warn,
        Level::Error => log::LevelFilter::Error,
        Level::Critical => log::LevelFilter::Off,
    };
    log::set_max_level(filter);
}
