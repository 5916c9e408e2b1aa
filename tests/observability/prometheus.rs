//! A real Prometheus for the observability test: Debian's `prometheus` (installed by
//! `scripts/observability-tools.sh`), run on a loopback port it picks itself, with its storage in
//! a temp dir; asked through its HTTP API. Killed on drop; its log is printed when the test fails.
//! Also runs `promtool`, each tool run bounded in time.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::common::TempDir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Longest a tool run may take (the first one may install the package with apt-get).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest Prometheus may take to listen and answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a command to completion within [`COMMAND_TIMEOUT`]; panics with its output unless it
/// succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let dir = TempDir::new("tool");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
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
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read(&err_path).unwrap_or_default(),
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

/// Installs `prometheus` and `promtool` with the project's script when they are missing;
/// panics (the test fails, it does not skip) if that is not possible.
pub fn ensure_tools() {
    // One install at a time: the tests of this binary run in parallel, and two apt-gets would
    // fight over dpkg's lock.
    static ONE: Mutex<()> = Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    run(&mut Command::new(format!(
        "{ROOT}/scripts/observability-tools.sh"
    )));
}

/// `promtool ARGS...` (run in `dir`); its stdout.
pub fn promtool(dir: &Path, args: &[&str]) -> String {
    let out = run(Command::new("promtool").args(args).current_dir(dir));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One sample of an instant vector: its labels (without `__name__`) and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// An active alert (pending or firing).
#[derive(Debug, Clone)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub state: String,
}

pub struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML or JSON text) and waits until it is ready.
    pub fn start(config: &str) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let config_path = dir.path().join("prometheus.yml");
        fs::write(&config_path, config).unwrap();
        let log = dir.path().join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.path().join("prometheus.out")).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run prometheus: {e}"));
        let mut prometheus = Prometheus {
            child,
            port: 0,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", prometheus.log());
            }
            if prometheus.port == 0 {
                prometheus.port = listening_port(&prometheus.log()).unwrap_or(0);
            }
            if prometheus.port != 0 && prometheus.get("/-/ready").is_ok_and(|(s, _)| s == 200) {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {READY_TIMEOUT:?}:\n{}",
                prometheus.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path_and_query: &str) -> Result<(u16, String), String> {
        let url = format!("http://127.0.0.1:{}{path_and_query}", self.port);
        let agent = ureq::AgentBuilder::new().timeout(API_TIMEOUT).build();
        let resp = match agent.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(format!("GET {url}: {e}")),
        };
        let status = resp.status();
        let body = resp.into_string().map_err(|e| format!("GET {url}: {e}"))?;
        Ok((status, body))
    }

    /// `GET /api/v1/<endpoint>` with query parameters; the `data` of a successful answer.
    fn api(&self, endpoint: &str, params: &[(&str, &str)]) -> Value {
        let query: String = params
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
            .collect::<Vec<_>>()
            .join("&");
        let (status, body) = self
            .get(&format!("/api/v1/{endpoint}?{query}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/api/v1/{endpoint}: not JSON ({e}): {body}"));
        assert!(
            status == 200 && v["status"] == "success",
            "/api/v1/{endpoint} {params:?}: {status} {body}"
        );
        v["data"].clone()
    }

    /// An instant query at the current time; panics unless it is valid PromQL giving a vector.
    pub fn query(&self, expr: &str) -> Vec<Sample> {
        let data = self.api("query", &[("query", expr)]);
        assert_eq!(data["resultType"], "vector", "{expr}: {data}");
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut labels: BTreeMap<String, String> =
                    serde_json::from_value(r["metric"].clone()).unwrap();
                labels.remove("__name__");
                let value = r["value"][1].as_str().unwrap();
                Sample {
                    labels,
                    value: parse_value(value),
                }
            })
            .collect()
    }

    /// The label sets of the series matching `selector` (`/api/v1/series`).
    pub fn series(&self, selector: &str) -> Vec<BTreeMap<String, String>> {
        serde_json::from_value(self.api("series", &[("match[]", selector)])).unwrap()
    }

    /// Active alerts (`/api/v1/alerts`).
    pub fn alerts(&self) -> Vec<Alert> {
        let data = self.api("alerts", &[]);
        data["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| Alert {
                labels: serde_json::from_value(a["labels"].clone()).unwrap(),
                state: a["state"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "----- prometheus log -----\n{}\n----- end of prometheus log -----",
                self.log()
            );
        }
    }
}

/// The port from Prometheus's `msg="Listening on" address=127.0.0.1:PORT` line.
fn listening_port(log: &str) -> Option<u16> {
    log.lines()
        .filter(|l| l.contains("msg=\"Listening on\""))
        .find_map(|l| l.split("address=").nth(1)?.trim().rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
}

/// Prometheus's sample values: numbers, `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => text
            .parse()
            .unwrap_or_else(|e| panic!("sample value {text:?}: {e}")),
    }
}
