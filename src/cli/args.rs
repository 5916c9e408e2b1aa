//! The command line: names, flags and help texts (clap derive). These names are
//! a contract that docs and users' CI scripts call; add, never rename.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "canary-gate",
    version,
    about = "Check, query and render canary-gate configurations with the filter's own code",
    long_about = "Check, query and render canary-gate plugin configurations with the same code \
                  the Envoy filter runs (config::parse, Plan::decide), so the answers cannot \
                  disagree with the filter.\n\nA configuration is a JSON file, an Istio WasmPlugin \
                  manifest (spec.pluginConfig) or an Envoy YAML/JSON holding the filter's \
                  `configuration`. A configuration without `gateways` is the gateway `default`.\n\n\
                  Exit codes: 0 success, 1 a check failed (invalid configuration, `diff` flagged \
                  a move), 2 usage or I/O error.",
    after_help = "Examples:\n  \
        canary-gate check envoy/demo-config.json envoy/istio/wasmplugin.yaml\n  \
        canary-gate route config.json --host models.example.com --path /fraud/score --header 'x-user-id: user-123'\n  \
        canary-gate diff old.json new.json --gateway fraud --keys users.txt --fail-on-move-out\n  \
        canary-gate promote config.json --gateway fraud --to fraud-v2 -i\n  \
        canary-gate render istio config.json --namespace models --out envoy/istio\n  \
        printf %s \"$KEY\" | canary-gate key-digest --consumer ci\n  \
        canary-gate stat --admin http://127.0.0.1:9901 --watch 2"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How results are printed: human tables, or JSON for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate plugin configurations exactly as the filter does (same messages and field paths).
    #[command(
        after_help = "Accepts a JSON plugin configuration, an Istio WasmPlugin manifest \
        (spec.pluginConfig, serialised as istiod sends it) or an Envoy YAML/JSON (every \
        envoy.extensions.filters.http.wasm.v3.Wasm filter's `configuration`). Prints \
        `file: field: message` per error; exits 1 if any configuration is refused.\n\n\
        Examples:\n  canary-gate check envoy/demo-config.json\n  \
        canary-gate check envoy/istio/wasmplugin.yaml bootstrap.yaml --output json"
    )]
    Check {
        /// Files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Which gateway and upstream a request gets, its bucket, and why.
    #[command(
        after_help = "The request is decided by Plan::decide, the filter's own decision. \
        For a gateway with `auth`, --consumer stands in for the authenticated identity (the \
        key of split.by: consumer); without it, credentials given with --header are checked \
        as the filter checks them, and a request the gateway would refuse is routed as if it \
        had authenticated with no identity (a note on stderr says so).\n\n\
        JSON: {\"gateway\", \"upstream\", \"bucket\", \"reason\": hashed|random|select|missing_key|unmatched, \"key\", ...}\n\n\
        Examples:\n  canary-gate route config.json --host models.example.com --path '/fraud/score?uid=7' --header 'x-user-id: user-123'\n  \
        canary-gate route config.json --host chat.example.com --path / --cookie session=abc --output json\n  \
        canary-gate route config.json --host models.example.com --path /fraud --consumer ci --at 2030-01-01T00:00:00Z"
    )]
    Route(RouteArgs),
    /// Share per upstream for a set of keys (or random requests): expected against observed.
    #[command(
        after_help = "Keys are split keys (user ids, cookie values, consumers), hashed \
        exactly as the filter hashes them. A keys file is UTF-8, one key per line, empty lines \
        ignored (a trailing \\r is removed).\n\nExamples:\n  canary-gate simulate config.json --gateway fraud --keys users.txt\n  \
        canary-gate simulate config.json --gateway chat --random 100000"
    )]
    Simulate(SimulateArgs),
    /// How many keys move from which upstream to which between two configurations.
    #[command(
        after_help = "With --fail-on-move-out, exits 1 if any key leaves a canary whose \
        percent did not shrink (raising an earlier canary, reordering canaries or changing \
        hash_seed do that): the check to run in CI before pushing a change.\n\n\
        Examples:\n  canary-gate diff live.json proposed.json --gateway fraud --keys users.txt\n  \
        canary-gate diff live.json proposed.json --gateway fraud --keys users.txt --fail-on-move-out --output json"
    )]
    Diff(DiffArgs),
    /// Make a canary the primary: the old primary is dropped, other canaries are kept.
    #[command(
        after_help = "Prints the new configuration (or writes it back with -i), \
        validated by the filter's parser, with a one-line summary on stderr of whose buckets \
        move. Works on a JSON configuration or a WasmPlugin manifest.\n\n\
        Example:\n  canary-gate promote config.json --gateway fraud --to fraud-v2 -i"
    )]
    Promote(PromoteArgs),
    /// Set a canary's percent (or every canary's) to 0 and remove its ramp (guard and revision stay).
    #[command(
        after_help = "Prints the new configuration (or writes it back with -i), \
        validated by the filter's parser, with a one-line summary on stderr of whose buckets \
        move.\n\nExamples:\n  canary-gate rollback config.json --gateway fraud --canary fraud-v2 -i\n  \
        canary-gate rollback envoy/istio/wasmplugin.yaml --gateway chat"
    )]
    Rollback(RollbackArgs),
    /// Render Istio manifests or an Envoy bootstrap consistent with a configuration.
    #[command(subcommand)]
    Render(Render),
    /// Read a key on stdin, print its SHA-256 (hex) for `access_key.keys`.
    #[command(
        after_help = "One trailing newline (\\n or \\r\\n) is removed; at a terminal the \
        key is read without echo. The key is never printed.\n\nExamples:\n  \
        printf %s \"$KEY\" | canary-gate key-digest\n  canary-gate key-digest --consumer ci < key.txt"
    )]
    KeyDigest {
        /// Print the whole `{"consumer": ..., "sha256": ...}` entry for this consumer.
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Read a password on stdin, print a bcrypt htpasswd line `USER:$2y$...` for `basic.users`.
    #[command(
        after_help = "One trailing newline (\\n or \\r\\n) is removed; at a terminal the \
        password is read without echo. The salt comes from the operating system \
        (getrandom).\n\nExample:\n  printf %s \"$PASSWORD\" | canary-gate htpasswd alice"
    )]
    Htpasswd {
        /// The user name.
        user: String,
        /// bcrypt cost, 4 to 12 (what the filter accepts); 5 is htpasswd -B's default.
        #[arg(long, default_value_t = 5)]
        cost: u32,
    },
    /// A live table per gateway and upstream from Envoy's admin endpoint.
    #[command(
        after_help = "Reads the filter's raw stat names from /stats (no tag extractors \
        needed): requests/s (from two samples), requests, and, where the filter reports them, \
        success rate, p50/p99 latency, guard state and the current share. Columns whose \
        metrics do not exist are left out.\n\nExamples:\n  canary-gate stat\n  \
        canary-gate stat --admin http://127.0.0.1:9901 --watch 2\n  canary-gate stat --output json"
    )]
    Stat(StatArgs),
}

#[derive(Args, Debug)]
pub struct RouteArgs {
    /// The configuration.
    pub file: PathBuf,
    /// The request's host (`:authority`); a port is allowed.
    #[arg(long)]
    pub host: Option<String>,
    /// The request's path, with its query string.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// A request header, `NAME: VALUE` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// A cookie, `NAME=VALUE` (repeatable; sent in one Cookie header).
    #[arg(long = "cookie", value_name = "NAME=VALUE")]
    pub cookies: Vec<String>,
    /// The authenticated identity, for a gateway with `auth`.
    #[arg(long)]
    pub consumer: Option<String>,
    /// Decide at this time (RFC 3339; default now): ramps and token expiry. A guard is
    /// assumed untripped.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("population").required(true).args(["keys", "random"]))]
pub struct SimulateArgs {
    pub file: PathBuf,
    /// The gateway (required when the configuration has several).
    #[arg(long)]
    pub gateway: Option<String>,
    /// A keys file: UTF-8, one key per line, empty lines ignored.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// N random requests (random split) or N random new keys (keyed split).
    #[arg(long, value_name = "N")]
    pub random: Option<u64>,
    /// The shares at this time (RFC 3339; default now): ramps stepped, no guard tripped.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    pub old: PathBuf,
    pub new: PathBuf,
    /// The gateway (required when the configurations have several).
    #[arg(long)]
    pub gateway: Option<String>,
    /// A keys file: UTF-8, one key per line, empty lines ignored.
    #[arg(long, value_name = "FILE")]
    pub keys: PathBuf,
    /// Exit 1 if any key leaves a canary whose percent did not shrink.
    #[arg(long)]
    pub fail_on_move_out: bool,
    /// Compare both at this time (RFC 3339; default now): ramps stepped, no guard tripped.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
}

#[derive(Args, Debug)]
pub struct PromoteArgs {
    pub file: PathBuf,
    /// The gateway (required when the configuration has several).
    #[arg(long)]
    pub gateway: Option<String>,
    /// The canary that becomes the primary.
    #[arg(long, value_name = "NAME")]
    pub to: String,
    /// Write the file instead of printing the new configuration.
    #[arg(short = 'i', long = "in-place")]
    pub in_place: bool,
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    pub file: PathBuf,
    /// The gateway (required when the configuration has several).
    #[arg(long)]
    pub gateway: Option<String>,
    /// The canary to roll back (default: every canary of the gateway).
    #[arg(long, value_name = "NAME")]
    pub canary: Option<String>,
    /// Write the file instead of printing the new configuration.
    #[arg(short = 'i', long = "in-place")]
    pub in_place: bool,
}

#[derive(Subcommand, Debug)]
pub enum Render {
    /// A WasmPlugin, Gateway, VirtualServices and DestinationRules for the configuration.
    #[command(
        after_help = "One VirtualService per set of hosts, with a route per upstream of \
        every gateway on them (an exact match on the route header) and a catch-all per gateway \
        to its primary (by path prefix, longest first). An upstream `SERVICE-SUBSET` goes to \
        subset SUBSET (pods labelled version: SUBSET) of SERVICE.NAMESPACE.svc.cluster.local; \
        an Istio cluster name `outbound|PORT|SUBSET|HOST` to that subset of HOST.\n\n\
        Examples:\n  canary-gate render istio config.json --namespace models | kubectl apply -f -\n  \
        canary-gate render istio config.json --out envoy/istio --image oci://registry.example.com/canary-gate:0.1.0"
    )]
    Istio(RenderIstioArgs),
    /// A static Envoy bootstrap that `envoy -c` (or `func-e run -c`) starts.
    #[command(
        after_help = "Routes on the route header (`cluster_header`), one cluster per \
        upstream (STATIC for an IP address, STRICT_DNS for a name), the filter's stats tags, \
        normalize_path and merge_slashes.\n\nExample:\n  canary-gate render envoy \
        envoy/demo-config.json --wasm target/wasm32-wasip1/release/optimized/canary_gate.wasm \
        --upstream model-v1=127.0.0.1:8001 --upstream model-v2=127.0.0.1:8002 \
        --upstream model-v3=127.0.0.1:8003 > envoy.yaml && envoy -c envoy.yaml"
    )]
    Envoy(RenderEnvoyArgs),
}

#[derive(Args, Debug)]
pub struct RenderIstioArgs {
    pub file: PathBuf,
    /// The namespace of the services, the Gateway, VirtualServices and DestinationRules.
    #[arg(long, default_value = "models")]
    pub namespace: String,
    /// The namespace of the ingress gateway (where the WasmPlugin goes).
    #[arg(long, default_value = "istio-system")]
    pub ingress_namespace: String,
    /// The filter's OCI image (default oci://registry.example.com/canary-gate:<version>).
    #[arg(long, value_name = "URL")]
    pub image: Option<String>,
    /// The image's manifest digest (hex), printed by scripts/package.sh.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// The services' port.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Write wasmplugin.yaml, gateway.yaml, virtualservice.yaml and destinationrule.yaml here
    /// instead of printing one stream.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RenderEnvoyArgs {
    pub file: PathBuf,
    /// The filter module (.wasm).
    #[arg(long, value_name = "PATH")]
    pub wasm: PathBuf,
    /// Where an upstream is, `NAME=HOST:PORT` (one per upstream).
    #[arg(long = "upstream", value_name = "NAME=HOST:PORT")]
    pub upstreams: Vec<String>,
    /// The gateway listener's address.
    #[arg(long, default_value = "0.0.0.0:10000", value_name = "ADDRESS:PORT")]
    pub listen: String,
    /// The admin endpoint's address.
    #[arg(long, default_value = "127.0.0.1:9901", value_name = "ADDRESS:PORT")]
    pub admin: String,
}

#[derive(Args, Debug)]
pub struct StatArgs {
    /// Envoy's admin endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9901", value_name = "URL")]
    pub admin: String,
    /// Print a new table every SECONDS until interrupted (or --count tables).
    #[arg(long, value_name = "SECONDS")]
    pub watch: Option<f64>,
    /// Seconds between the two samples that give requests/s (without --watch).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub interval: f64,
    /// Stop after this many tables (with --watch).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Only this gateway.
    #[arg(long)]
    pub gateway: Option<String>,
}
