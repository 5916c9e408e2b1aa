//! `render`: deployment files consistent with a configuration: Istio
//! manifests (`istio`) and a static Envoy bootstrap (`envoy`).

pub mod envoy;
pub mod istio;

use std::fs;
use std::path::Path;

use super::Failure;

/// Writes `text` to `dir/file`.
fn write(dir: &Path, file: &str, text: &str) -> Result<(), Failure> {
    let path = dir.join(file);
    fs::write(&path, text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}
