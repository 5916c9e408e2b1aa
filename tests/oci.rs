//! The OCI image for Istio's `url: oci://...`, end to end with standard tools: `scripts/package.sh`
//! builds it (umoci, checked with skopeo), a local registry (Debian's `docker-registry`, on
//! loopback, storage in a temp dir) receives it from `skopeo copy`, skopeo pulls it back, and the
//! pulled image is what Istio's image fetcher accepts ("compat" variant: the single
//! `application/vnd.oci.image.layer.v1.tar+gzip` layer holds `plugin.wasm`) with exactly the
//! built module in it. The tools are installed by `scripts/oci-tools.sh`; if that fails, the
//! test fails and says so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::TempDir;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Longest wait for the registry to answer on `/v2/`.
const REGISTRY_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest any one tool run may take (apt-get installs included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs a command to completion within [`COMMAND_TIMEOUT`]; panics with its output on failure.
fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    // Drain both pipes on threads so a chatty tool cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut b).unwrap();
        b
    });
    let err_t = thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut b).unwrap();
        b
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {COMMAND_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    };
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout)
        .unwrap()
        .trim()
        .to_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Debian's `docker-registry` (the CNCF distribution registry) on 127.0.0.1, storage in `dir`.
/// Killed on drop; its log is printed when the test is failing.
struct Registry {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        // A port that was free a moment ago (the registry takes a fixed address in its config).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let storage = dir.join("storage");
        fs::create_dir_all(&storage).unwrap();
        let config = dir.join("registry.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let log = dir.join("registry.log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("registry.out")).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run docker-registry: {e}"));
        let mut registry = Registry { child, port, log };
        let url = format!("http://127.0.0.1:{port}/v2/");
        let deadline = Instant::now() + REGISTRY_READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited ({status}):\n{}", registry.log());
            }
            if common::http_request("GET", &url, &[], None).is_ok_and(|r| r.status == 200) {
                return registry;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry not ready within {REGISTRY_READY_TIMEOUT:?}:\n{}",
                registry.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("----- docker-registry log -----\n{}", self.log());
        }
    }
}

/// Reads a blob of an OCI image layout by digest, checking the digest.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(sha256_hex(&bytes), hex, "blob {digest} is corrupt");
    bytes
}

#[test]
fn the_packaged_image_survives_a_registry_round_trip_with_the_exact_module() {
    let module = fs::read(common::wasm_path()).unwrap();
    let tmp = TempDir::new("oci");
    let layout = tmp.0.join("layout");
    let tag = "roundtrip";

    // Build the image; stdout is the manifest digest for the WasmPlugin's `sha256`.
    let digest = stdout(
        Command::new(format!("{ROOT}/scripts/package.sh"))
            .args(["--out", layout.to_str().unwrap(), "--tag", tag])
            .current_dir(ROOT),
    );
    assert!(
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "package.sh printed {digest:?}, not a sha256"
    );
    // Same module, same image.
    let again = stdout(
        Command::new(format!("{ROOT}/scripts/package.sh"))
            .args(["--out", tmp.0.join("again").to_str().unwrap(), "--tag", tag])
            .current_dir(ROOT),
    );
    assert_eq!(again, digest, "the image is not reproducible");

    // The local registry, and skopeo to push and pull (installed by the project's script).
    run(Command::new(format!("{ROOT}/scripts/oci-tools.sh")).args(["docker-registry", "skopeo"]));
    let registry = Registry::start(&tmp.0);
    let remote = format!("docker://127.0.0.1:{}/canary-gate", registry.port);
    run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:{tag}", layout.display()),
        &format!("{remote}:{tag}"),
    ]));

    // What Istio checks `sha256` against: the digest of the manifest the registry serves.
    let served = stdout(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("{remote}:{tag}"),
    ]));
    assert_eq!(
        served,
        format!("sha256:{digest}"),
        "the registry serves another manifest"
    );

    // Pull it back by digest (what a pinned WasmPlugin pulls) into a fresh layout.
    let pulled = tmp.0.join("pulled");
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("{remote}@sha256:{digest}"),
        &format!("oci:{}:{tag}", pulled.display()),
    ]));
    let index: Value =
        serde_json::from_slice(&fs::read(pulled.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    assert_eq!(manifest_digest, format!("sha256:{digest}"));
    let manifest: Value = serde_json::from_slice(&blob(&pulled, manifest_digest)).unwrap();

    // Istio's compat variant: the (last, here only) layer is an OCI tar+gzip layer, and the
    // module is the entry whose base name is plugin.wasm.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "exactly one layer: {manifest}");
    assert_eq!(layers[0]["mediaType"], OCI_LAYER, "{manifest}");
    let layer_digest = layers[0]["digest"].as_str().unwrap();
    let layer = tmp.0.join("layer.tar.gz");
    fs::write(&layer, blob(&pulled, layer_digest)).unwrap();
    let entries = stdout(Command::new("tar").arg("-tzf").arg(&layer));
    assert_eq!(
        entries, "plugin.wasm",
        "the layer holds exactly plugin.wasm"
    );
    let extracted = run(Command::new("tar")
        .arg("-xzOf")
        .arg(&layer)
        .arg("plugin.wasm"))
    .stdout;
    assert!(
        extracted == module,
        "plugin.wasm in the pulled image ({} bytes, sha256 {}) is not the built module ({} bytes, sha256 {})",
        extracted.len(),
        sha256_hex(&extracted),
        module.len(),
        sha256_hex(&module)
    );
    drop(registry);
}
