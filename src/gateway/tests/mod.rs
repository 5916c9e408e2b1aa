//! Tests of the gateway core, one file per concern.

mod host;
mod name;
mod path;
mod stats;
mod table;
