//! `canary-gate`: the command-line tool. Everything is in the library's
//! `cli` module (native targets only); this file only runs it.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    canary_gate::cli::main()
}

/// The filter is the wasm32 artifact; the tool is native only.
#[cfg(target_arch = "wasm32")]
fn main() {}
