//! Configuration: one TOML file plus `VESSEL_…` environment overrides,
//! deserialised into typed structs and checked at start-up with errors that
//! name the bad key (`hosts[2].ssh.key_path: no such file`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::QueueName;
use crate::error_chain::chain;
use crate::units::{ByteSize, Span};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

pub use vessel_common::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Serve the API over TLS with this certificate and key.
    pub tls: Option<TlsConfig>,
    /// Serve plain HTTP on an address that is not loopback. Only for a
    /// deployment where TLS ends in front of the orchestrator (an ingress,
    /// a proxy on the same machine); tokens cross the wire otherwise.
    #[serde(default)]
    pub allow_plaintext: bool,
    pub database_url: Secret,
    /// Labels every container this orchestrator makes, so two fleets (or two
    /// test runs) sharing a Docker engine never touch each other's vessels.
    #[serde(default = "default_fleet")]
    pub fleet: String,
    /// The host inventory, a separate TOML file with `[[hosts]]` tables.
    pub hosts_file: Option<PathBuf>,
    #[serde(default)]
    pub hosts: Vec<HostSpec>,
    pub auth: AuthConfig,
    #[serde(default)]
    pub conductor: ConductorConfig,
    #[serde(default)]
    pub queues: BTreeMap<String, QueueConfig>,
    pub tailnet: Option<TailnetConfig>,
    #[serde(default)]
    pub undertaker: UndertakerConfig,
    #[serde(default)]
    pub work_hours: crate::work_hours::WorkHoursConfig,
    #[serde(default)]
    pub reconciler: ReconcilerConfig,
    /// The GPU watchdog: hosts whose DCGM series go stale in Prometheus.
    #[serde(default)]
    pub watchdog: WatchdogConfig,
    #[serde(default)]
    pub line: LineConfig,
    /// Single sign-on for the `vessel` CLI, published unauthenticated at
    /// `GET /v1/auth/config`.
    pub cli: Option<CliConfig>,
    /// The web portal under `/`.
    #[serde(default)]
    pub portal: crate::portal_config::PortalConfig,
}

/// Where the `vessel` CLI signs people in: one of the `[[auth.oidc]]`
/// issuers, by the device grant, as a client registered there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliConfig {
    /// Exactly one `auth.oidc[*].issuer`: its tokens are the ones accepted.
    pub issuer: String,
    /// The CLI's (public) client id at the issuer.
    pub client_id: String,
    /// What the CLI asks for; `openid` at least.
    #[serde(default = "default_cli_scopes")]
    pub scopes: Vec<String>,
}

fn default_cli_scopes() -> Vec<String> {
    vec!["openid".into()]
}

/// The waiting line, fleet-wide; per-queue rules are in `[queues.*]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Requests one person may have waiting at once, in all queues.
    #[serde(default = "default_max_pending")]
    pub max_pending: u32,
}

impl Default for LineConfig {
    fn default() -> Self {
        LineConfig {
            max_pending: default_max_pending(),
        }
    }
}

fn default_max_pending() -> u32 {
    4
}

/// The API's certificate: PEM, inline or `{ file = … }`. Read once at
/// start-up; a renewed certificate takes a restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: Secret,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Secret,
}

impl TlsConfig {
    /// The chain and key as rustls wants them; the error names the key.
    pub fn parts(
        &self,
    ) -> Result<
        (
            Vec<rustls::pki_types::CertificateDer<'static>>,
            rustls::pki_types::PrivateKeyDer<'static>,
        ),
        ConfigError,
    > {
        use rustls::pki_types::pem::PemObject;
        let chain =
            rustls::pki_types::CertificateDer::pem_slice_iter(self.cert.expose().as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid("tls.cert", format!("not a PEM certificate chain: {e}")))?;
        if chain.is_empty() {
            return Err(invalid("tls.cert", "holds no PEM certificate"));
        }
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(self.key.expose().as_bytes())
            .map_err(|e| invalid("tls.key", format!("not a PEM private key: {e}")))?;
        Ok((chain, key))
    }
}

/// Idle reclaim. Idle time accrues only inside work hours.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UndertakerConfig {
    /// When it sweeps: a cron expression with seconds, in UTC (once per
    /// tick across replicas). Default `0 */30 * * * *`.
    pub schedule: Option<String>,
    /// The older way to say it: an interval, turned into a schedule.
    pub every: Option<Span>,
    /// The PromQL window: `avg_over_time(DCGM_FI_DEV_GPU_UTIL[window])`.
    pub window: Span,
    /// Prometheus, where the DCGM exporters are scraped. Without it GPU
    /// vessels are never idle (unknown is not idle).
    pub prometheus_url: Option<String>,
    /// A GPU averaging at or below this (%) is idle.
    pub gpu_idle_below: f64,
    /// A CPU-only vessel using at or below this (% of its cores) is idle.
    pub cpu_idle_below: f64,
    /// Idle work-time before the warning…
    pub warn_after: Span,
    /// …and after the warning, before burial.
    pub bury_after: Span,
    /// What Keep exempts.
    pub keep_for: Span,
    /// Warn this long before a vessel's lifetime ends.
    pub expiry_warning: Span,
}

impl Default for UndertakerConfig {
    fn default() -> Self {
        let h = |n: u64| Span(std::time::Duration::from_secs(n * 3600));
        UndertakerConfig {
            schedule: None,
            every: None,
            window: Span(std::time::Duration::from_secs(1800)),
            prometheus_url: None,
            gpu_idle_below: 0.0,
            cpu_idle_below: 1.0,
            warn_after: h(6),
            bury_after: h(6),
            keep_for: h(24),
            expiry_warning: h(24),
        }
    }
}

/// Containers vs. rows, at start and periodically.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcilerConfig {
    /// When it runs besides start-up: cron with seconds, UTC. Default
    /// `0 */5 * * * *`.
    pub schedule: Option<String>,
    /// The older way to say it: an interval, turned into a schedule.
    pub every: Option<Span>,
    /// Delivered events and the bot's message references of vessels that
    /// ended are kept this long, then deleted.
    pub retention: Span,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            schedule: None,
            every: None,
            retention: Span(std::time::Duration::from_secs(30 * 86_400)),
        }
    }
}

/// The GPU watchdog reads Prometheus at `undertaker.prometheus_url`; without
/// it, it is off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchdogConfig {
    /// When the DCGM series are checked: cron with seconds, UTC.
    pub schedule: String,
    /// How often Prometheus scrapes the DCGM exporters.
    pub scrape_interval: Span,
    /// A GPU without a sample for this long is stale (default: three
    /// scrape intervals, so one slow scrape is not an incident).
    pub stale_after: Option<Span>,
    /// Only GPUs with a sample within this are watched: one gone longer
    /// (removed from the host, say) stops counting as stale.
    pub lookback: Span,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            schedule: "*/15 * * * * *".into(),
            scrape_interval: Span::from_secs(15),
            stale_after: None,
            lookback: Span::from_secs(3600),
        }
    }
}

impl WatchdogConfig {
    pub fn stale_after(&self) -> std::time::Duration {
        self.stale_after
            .map(|s| s.duration())
            .unwrap_or(self.scrape_interval.duration() * 3)
    }
}

/// A periodic job's schedule as configured: a cron expression, or an older
/// interval key turned into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSchedule {
    /// The key it came from, for errors.
    pub key: String,
    pub cron: String,
}

fn job_schedule(
    section: &str,
    cron_key: &str,
    cron: &Option<String>,
    interval_key: &str,
    interval: &Option<Span>,
    default: &str,
) -> Result<JobSchedule, ConfigError> {
    let key = |k: &str| format!("{section}.{k}");
    let schedule = match (cron, interval) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                key(interval_key),
                format!("give `{cron_key}` (a cron expression) or `{interval_key}`, not both"),
            ))
        }
        (Some(cron), None) => JobSchedule {
            key: key(cron_key),
            cron: cron.clone(),
        },
        (None, Some(every)) => JobSchedule {
            key: key(interval_key),
            cron: crate::cron::cron_for_interval(every.duration()).ok_or_else(|| {
                invalid(
                    key(interval_key),
                    format!(
                        "{every} is not a whole divisor of a minute, an hour or a day; \
                         give `{cron_key}` as a cron expression instead"
                    ),
                )
            })?,
        },
        (None, None) => JobSchedule {
            key: key(cron_key),
            cron: default.into(),
        },
    };
    crate::cron::Cron::parse(&schedule.cron)
        .map_err(|e| invalid(schedule.key.clone(), chain(&e).to_string()))?;
    Ok(schedule)
}

impl UndertakerConfig {
    pub fn schedule(&self) -> Result<JobSchedule, ConfigError> {
        job_schedule(
            "undertaker",
            "schedule",
            &self.schedule,
            "every",
            &self.every,
            "0 */30 * * * *",
        )
    }
}

impl ReconcilerConfig {
    pub fn schedule(&self) -> Result<JobSchedule, ConfigError> {
        job_schedule(
            "reconciler",
            "schedule",
            &self.schedule,
            "every",
            &self.every,
            "0 */5 * * * *",
        )
    }
}

impl ConductorConfig {
    /// The survey's schedule (every host probed).
    pub fn probe_schedule(&self) -> Result<JobSchedule, ConfigError> {
        job_schedule(
            "conductor",
            "probe_schedule",
            &self.probe_schedule,
            "probe_interval",
            &self.probe_interval,
            "0 * * * * *",
        )
    }
}

impl WatchdogConfig {
    pub fn job_schedule(&self) -> Result<JobSchedule, ConfigError> {
        job_schedule(
            "watchdog",
            "schedule",
            &Some(self.schedule.clone()),
            "",
            &None,
            "",
        )
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8700))
}
fn default_fleet() -> String {
    "default".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The `iss` of service tokens (the bot's).
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default = "default_audience")]
    pub audience: String,
    /// The bot's Ed25519 public key (PEM, or `{ file = … }`): service tokens
    /// are verified with it, and nothing here can sign one.
    pub service_public_key: Secret,
    /// People who are fleet admins: Slack user ids, and OIDC identities as
    /// `SUB@NAME` (the issuer's `name`), or the person one is linked to.
    /// The orchestrator alone decides who is one; a token's claims only
    /// narrow what its subject may do.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Machine subjects (e.g. `prometheus`) signed by the service key, with
    /// the permissions they get and how long their tokens may live.
    #[serde(default)]
    pub machines: std::collections::BTreeMap<String, MachineConfig>,
    /// The longest a service token may live (the bot mints 5-minute ones).
    #[serde(default = "default_max_token_ttl")]
    pub max_token_ttl: Span,
    /// OIDC issuers (Auth0 or any) whose RS256/ES256 tokens are accepted,
    /// keys from their JWKS.
    #[serde(default)]
    pub oidc: Vec<OidcConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    pub perms: Vec<String>,
    #[serde(default = "default_max_token_ttl")]
    pub max_token_ttl: Span,
    /// Revokes this machine's tokens issued before this time (RFC 3339),
    /// without rotating the service key: set it to now, restart, mint anew.
    pub issued_after: Option<chrono::DateTime<chrono::Utc>>,
}

fn default_max_token_ttl() -> Span {
    Span(std::time::Duration::from_secs(600))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Exactly the token's `iss` (Auth0's ends with `/`).
    pub issuer: String,
    /// Qualifies this issuer's subjects: a person signed in here is
    /// `SUB@NAME` in Vessel (in `auth.admins`, owners, the audit log),
    /// unless an admin linked the identity to a person (`vessel link`).
    /// Default: the issuer URL's host and port.
    #[serde(default)]
    pub name: Option<String>,
    pub audience: String,
    pub jwks_url: String,
    /// Pinned: a token signed otherwise is refused.
    #[serde(default = "default_oidc_algorithms")]
    pub algorithms: Vec<String>,
    /// Where the token lists permissions (Auth0 RBAC: `permissions`). Never
    /// `scope`: a user chooses what a client asks for.
    #[serde(default = "default_permissions_claim")]
    pub permissions_claim: String,
    /// A claim holding the unix name to use on first sight (else derived).
    pub unix_name_claim: Option<String>,
    /// The clients (`azp` or `client_id`) whose tokens are accepted; empty
    /// accepts any client of the issuer.
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    /// The most this issuer's tokens may grant (a ceiling; admin
    /// permissions still need the subject in `auth.admins`).
    #[serde(default = "default_oidc_grants")]
    pub grants: Vec<String>,
    /// An unknown `kid` refetches the JWKS at most this often.
    #[serde(default = "default_jwks_refresh")]
    pub min_refresh: Span,
}

impl OidcConfig {
    /// The name that qualifies this issuer's subjects.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| crate::identity::default_name(&self.issuer))
    }
}

fn default_oidc_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_oidc_grants() -> Vec<String> {
    let mut grants: Vec<String> = vessel_api::perm::ADMIN
        .iter()
        .map(|p| p.to_string())
        .collect();
    grants.sort();
    grants
}
fn default_permissions_claim() -> String {
    "permissions".into()
}
fn default_jwks_refresh() -> Span {
    Span(std::time::Duration::from_secs(30))
}

fn default_issuer() -> String {
    "vessel-bot".into()
}
fn default_audience() -> String {
    "vessel-orchestrator".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConductorConfig {
    /// Concurrent provisioning workers; 0 turns the conductor off (placement
    /// still reserves, nothing is started).
    pub workers: usize,
    pub max_attempts: i32,
    /// First retry delay; doubles per attempt.
    pub backoff: Span,
    /// How long a worker owns a job without renewing it; a crashed worker's
    /// jobs are picked up after this.
    pub lease: Span,
    /// From container start to an SSH banner.
    pub ready_timeout: Span,
    /// Connecting and authenticating to a host.
    pub ssh_timeout: Span,
    pub pids_limit: i64,
    /// When every host is probed again (cores, memory, GPUs, reachable):
    /// cron with seconds, UTC. Default `0 * * * * *`.
    pub probe_schedule: Option<String>,
    /// The older way to say it: an interval, turned into a schedule.
    pub probe_interval: Option<Span>,
}

impl Default for ConductorConfig {
    fn default() -> Self {
        ConductorConfig {
            workers: 4,
            max_attempts: 3,
            backoff: Span(std::time::Duration::from_secs(2)),
            lease: Span(std::time::Duration::from_secs(30)),
            ready_timeout: Span(std::time::Duration::from_secs(60)),
            ssh_timeout: Span(std::time::Duration::from_secs(10)),
            pids_limit: 4096,
            probe_schedule: None,
            probe_interval: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    #[serde(default = "one")]
    pub gpus: u32,
    #[serde(default = "four")]
    pub cpus: u32,
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    #[serde(default = "default_image")]
    pub image: String,
    /// Images a request may name besides `image` (exact, or `repo:*` for any
    /// tag of a repository); empty means the default image only.
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default = "default_lifetime")]
    pub lifetime: Span,
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime: Span,
    /// Per person: GPUs placed in this queue at once (unset: no limit). An
    /// admin may override it for one person (`/fleet limit`).
    #[serde(default)]
    pub max_gpus: Option<u32>,
    /// Per person: vessels placed in this queue at once.
    #[serde(default)]
    pub max_vessels: Option<u32>,
    /// How long a request waits in line before it ends `expired`.
    #[serde(default = "default_max_wait")]
    pub max_wait: Span,
    /// After this long at the head of the line without fitting, a request
    /// holds a host: smaller requests stop being placed there.
    #[serde(default = "default_hold_after")]
    pub hold_after: Span,
    /// The most a vessel may write outside its home (its container's
    /// writable layer: packages, `/tmp`, `/opt`). Applied as the
    /// container's storage size where the host's storage driver can limit
    /// it; elsewhere the undertaker measures it each sweep, warns, and
    /// stops the vessel still over it at the next. Unset: no limit.
    #[serde(default)]
    pub disk: Option<ByteSize>,
    /// What the undertaker does with an idle vessel: `hibernate` (its
    /// processes end, every file is kept; counted around the clock) or
    /// `bury` (removed, home kept; counted in work hours, `[undertaker]
    /// warn_after` and `bury_after`).
    #[serde(default)]
    pub idle_action: IdleAction,
    /// Idle this long (GPUs by DCGM and its processes under
    /// `cpu_idle_below`), a vessel is hibernated.
    #[serde(default = "default_hibernate_after")]
    pub hibernate_after: Span,
    /// The owner is warned this long before (Keep / Hibernate now).
    #[serde(default = "default_warn_before")]
    pub warn_before: Span,
    /// A vessel asleep this long is buried (warned a day ahead).
    #[serde(default = "default_bury_hibernated_after")]
    pub bury_hibernated_after: Span,
    /// Per person: hibernated vessels kept in this queue; over it, the
    /// oldest is buried.
    #[serde(default = "default_max_hibernated")]
    pub max_hibernated: u32,
}

/// What the undertaker does with an idle vessel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdleAction {
    #[default]
    Hibernate,
    Bury,
}

fn default_hibernate_after() -> Span {
    Span::from_secs(3600)
}
fn default_warn_before() -> Span {
    Span::from_secs(15 * 60)
}
fn default_bury_hibernated_after() -> Span {
    Span::from_secs(14 * 86_400)
}
fn default_max_hibernated() -> u32 {
    3
}

fn one() -> u32 {
    1
}
fn four() -> u32 {
    4
}
fn default_memory() -> ByteSize {
    ByteSize(16 * ByteSize::GIB)
}
fn default_image() -> String {
    "vessel/base:latest".into()
}
fn default_lifetime() -> Span {
    Span(std::time::Duration::from_secs(7 * 86_400))
}
fn default_max_wait() -> Span {
    Span::from_secs(24 * 3600)
}
fn default_hold_after() -> Span {
    Span::from_secs(3600)
}
fn default_max_lifetime() -> Span {
    Span(std::time::Duration::from_secs(30 * 86_400))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub name: String,
    /// The queue this host's hardware serves (`3090`, `a100`, `cpu`).
    pub queue: QueueName,
    pub ssh: SshSpec,
    /// Users' home directories live under this path on the host.
    pub home_root: PathBuf,
    #[serde(default)]
    pub gpu_runtime: GpuRuntime,
    #[serde(default = "default_docker_socket")]
    pub docker_socket: String,
    pub network: NetworkSpec,
    /// Memory kept back for the host itself.
    #[serde(default = "default_reserved_memory")]
    pub reserved_memory: ByteSize,
}

fn default_docker_socket() -> String {
    "/var/run/docker.sock".into()
}
fn default_reserved_memory() -> ByteSize {
    ByteSize(ByteSize::GIB)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSpec {
    /// `host:port`.
    pub address: String,
    #[serde(default = "default_ssh_user")]
    pub user: String,
    pub key_path: PathBuf,
    /// The host's public key as in `known_hosts` (`ssh-ed25519 AAAA…`); the
    /// connection is refused if the host presents another.
    pub host_key: String,
}

fn default_ssh_user() -> String {
    "root".into()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GpuRuntime {
    Nvidia,
    Cdi,
    #[default]
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum NetworkSpec {
    /// A Docker network on the host and an address the orchestrator assigns.
    Direct {
        docker_network: String,
        #[serde(default)]
        driver: DirectDriver,
        /// macvlan only: the host's LAN interface.
        parent: Option<String>,
        subnet: ipnet::Ipv4Net,
        gateway: Option<std::net::Ipv4Addr>,
        /// The part of the subnet vessels get addresses from. Required with
        /// macvlan (the rest of a LAN belongs to its DHCP server, its
        /// machines, the orchestrator); a bridge defaults to the whole
        /// subnet. Pools of different hosts never overlap.
        pool: Option<ipnet::Ipv4Net>,
    },
    /// Each vessel joins the tailnet as its own device; the Docker network
    /// (a bridge) only carries its outbound traffic, nothing is published.
    Tailscale {
        docker_network: String,
        subnet: ipnet::Ipv4Net,
    },
}

impl NetworkSpec {
    /// Where this host's vessels get their addresses: the pool, or a
    /// bridge's whole subnet; `None` for tailscale (the tailnet assigns).
    pub fn address_pool(&self) -> Option<ipnet::Ipv4Net> {
        match self {
            NetworkSpec::Direct { subnet, pool, .. } => Some(pool.unwrap_or(*subnet)),
            NetworkSpec::Tailscale { .. } => None,
        }
    }

    /// The subnet's gateway: the one given, else its first address
    /// (Docker's choice).
    pub fn gateway(&self) -> Option<std::net::Ipv4Addr> {
        match self {
            NetworkSpec::Direct {
                subnet, gateway, ..
            } => Some(gateway.unwrap_or_else(|| first_host(subnet))),
            NetworkSpec::Tailscale { .. } => None,
        }
    }

    pub fn docker_network(&self) -> &str {
        match self {
            NetworkSpec::Direct { docker_network, .. }
            | NetworkSpec::Tailscale { docker_network, .. } => docker_network,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TailnetProvider {
    Tailscale,
    Headscale,
}

/// The tailnet vessels on `tailscale`-mode hosts join.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailnetConfig {
    pub provider: TailnetProvider,
    /// `https://api.tailscale.com`, or the Headscale server.
    pub api_url: String,
    /// Tailscale: the tailnet name (`-` means the key's default tailnet).
    #[serde(default = "default_tailnet")]
    pub tailnet: String,
    /// Headscale: the user that owns vessel nodes.
    pub user: Option<String>,
    /// An API key (Tailscale or Headscale)…
    pub api_key: Option<Secret>,
    /// …or Tailscale OAuth client credentials.
    pub oauth_client_id: Option<String>,
    pub oauth_client_secret: Option<Secret>,
    /// Every vessel's tags; `{user}` in `user_tag` becomes the owner's unix
    /// name, so the ACL file can say who reaches whose vessels.
    #[serde(default = "default_tags")]
    pub tags: Vec<String>,
    pub user_tag: Option<String>,
    /// How long a minted auth key lives: it is used once, at start.
    #[serde(default = "default_key_expiry")]
    pub key_expiry: Span,
    /// How long a vessel may take to appear in the device list.
    #[serde(default = "default_device_timeout")]
    pub device_timeout: Span,
    /// With MagicDNS, the tailnet's DNS suffix (`tail1234.ts.net`): SSH
    /// configs then name the vessel instead of its address.
    pub magic_dns_suffix: Option<String>,
}

fn default_tailnet() -> String {
    "-".into()
}
fn default_tags() -> Vec<String> {
    vec!["tag:vessel".into()]
}
fn default_key_expiry() -> Span {
    Span(std::time::Duration::from_secs(600))
}
fn default_device_timeout() -> Span {
    Span(std::time::Duration::from_secs(60))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DirectDriver {
    #[default]
    Bridge,
    Macvlan,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inventory {
    #[serde(default)]
    hosts: Vec<HostSpec>,
}

/// `VESSEL_…` variables that are not config keys: the log format is read
/// before the config is (`telemetry`). As an override it would be the
/// unknown key `log_format`, and the orchestrator would refuse to start.
const NOT_CONFIG_KEYS: &[&str] = &[crate::telemetry::LOG_FORMAT_VAR];

/// The environment's variables that may be config overrides.
fn config_vars(
    vars: impl Iterator<Item = (String, String)>,
) -> impl Iterator<Item = (String, String)> {
    vars.filter(|(name, _)| !NOT_CONFIG_KEYS.contains(&name.as_str()))
}

impl Config {
    /// Reads the file, applies `VESSEL_…` overrides (`VESSEL_DATABASE_URL`
    /// sets `database_url`), reads the inventory and validates it all.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut value: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        vessel_common::apply_env_overrides(&mut value, "VESSEL_", config_vars(std::env::vars()));
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_table(value, base, &path.display().to_string())
    }

    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let value: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "config".into(),
            message: e.to_string(),
        })?;
        Config::from_table(value, Path::new("."), "config")
    }

    fn from_table(value: toml::Table, base: &Path, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::Value::Table(value)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: origin.to_string(),
                    message: e.to_string(),
                })?;
        if let Some(file) = &config.hosts_file {
            let file = base.join(file);
            let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
                path: file.clone(),
                source,
            })?;
            let inventory: Inventory = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: file.display().to_string(),
                message: e.to_string(),
            })?;
            config.hosts.extend(inventory.hosts);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot; the first error names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_auth()?;
        crate::work_hours::WorkHours::parse(&self.work_hours)
            .map_err(|(key, message)| invalid(key, message))?;
        if let Some(url) = &self.undertaker.prometheus_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid("undertaker.prometheus_url", "not an http(s) URL"));
            }
        }
        self.validate_schedules()?;
        if !valid_label(&self.fleet) {
            return Err(invalid("fleet", "letters, digits, `-` and `_` only"));
        }
        if self.conductor.max_attempts < 1 {
            return Err(invalid("conductor.max_attempts", "must be at least 1"));
        }
        for (name, q) in &self.queues {
            validate_queue(name, q)?;
        }
        if let Some(t) = &self.tailnet {
            validate_tailnet(t)?;
        }
        let mut seen = std::collections::HashSet::new();
        for (i, host) in self.hosts.iter().enumerate() {
            let key = format!("hosts[{i}]");
            if !valid_label(&host.name) {
                return Err(invalid(
                    format!("{key}.name"),
                    "letters, digits, `-` and `_` only",
                ));
            }
            if !seen.insert(&host.name) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("`{}` is listed twice", host.name),
                ));
            }
            self.validate_host(&key, host)?;
        }
        self.validate_pools()?;
        self.validate_cli()?;
        self.validate_listen()
    }

    /// Every periodic job's schedule parses; the watchdog's staleness is
    /// longer than a scrape and shorter than its lookback.
    fn validate_schedules(&self) -> Result<(), ConfigError> {
        self.undertaker.schedule()?;
        self.reconciler.schedule()?;
        self.conductor.probe_schedule()?;
        self.watchdog.job_schedule()?;
        let w = &self.watchdog;
        if w.stale_after() < w.scrape_interval.duration() {
            return Err(invalid(
                "watchdog.stale_after",
                format!(
                    "shorter than one scrape interval ({}): every scrape gap would be an incident",
                    w.scrape_interval
                ),
            ));
        }
        if w.lookback.duration() <= w.stale_after() {
            return Err(invalid(
                "watchdog.lookback",
                "must be longer than watchdog.stale_after",
            ));
        }
        Ok(())
    }

    /// The CLI must be sent to an issuer whose tokens this orchestrator
    /// takes, as a client it accepts: else every login ends in a 401.
    fn validate_cli(&self) -> Result<(), ConfigError> {
        let Some(cli) = &self.cli else {
            return Ok(());
        };
        let Some(oidc) = self.auth.oidc.iter().find(|o| o.issuer == cli.issuer) else {
            return Err(invalid(
                "cli.issuer",
                format!(
                    "`{}` is none of the [[auth.oidc]] issuers; the CLI's tokens would be refused",
                    cli.issuer
                ),
            ));
        };
        if !(cli.issuer.starts_with("https://") || cli.issuer.starts_with("http://127.")) {
            return Err(invalid(
                "cli.issuer",
                "must be https (plain http only on loopback)",
            ));
        }
        let id_ok = !cli.client_id.is_empty()
            && cli.client_id.len() <= 255
            && cli.client_id.chars().all(|c| c.is_ascii_graphic());
        if !id_ok {
            return Err(invalid(
                "cli.client_id",
                "must be the client id registered at the issuer (printable, no spaces)",
            ));
        }
        if !oidc.allowed_clients.is_empty() && !oidc.allowed_clients.contains(&cli.client_id) {
            return Err(invalid(
                "cli.client_id",
                format!(
                    "`{}` is not in the issuer's allowed_clients; the CLI's tokens would be refused",
                    cli.client_id
                ),
            ));
        }
        if !cli.scopes.iter().any(|s| s == "openid")
            || cli
                .scopes
                .iter()
                .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(invalid(
                "cli.scopes",
                "a list of scope names that includes `openid`",
            ));
        }
        Ok(())
    }

    /// Plain HTTP only on loopback unless the operator says TLS ends in
    /// front: refusing to start (rather than a warning nobody reads) is what
    /// keeps bearer tokens off a LAN in the clear; `allow_plaintext` is one
    /// explicit line for the proxy-in-front case.
    fn validate_listen(&self) -> Result<(), ConfigError> {
        self.portal
            .validate(self.auth.oidc.iter().map(|o| o.issuer.as_str()))
            .map_err(|(key, message)| invalid(key, message))?;
        // The dev sign-in asks for no password: only where nobody else can
        // reach it.
        if self.portal.dev_sign_in && !self.listen.ip().is_loopback() {
            return Err(invalid(
                "portal.dev_sign_in",
                format!(
                    "signs anyone in without a password, so only on a loopback `listen`, not {}",
                    self.listen
                ),
            ));
        }
        if let Some(tls) = &self.tls {
            tls.parts()?;
        } else if !self.listen.ip().is_loopback() && !self.allow_plaintext {
            return Err(invalid(
                "listen",
                format!(
                    "{} is not loopback and there is no [tls]: give `tls.cert` and `tls.key`, \
                     or set `allow_plaintext = true` if TLS ends in front of the orchestrator",
                    self.listen
                ),
            ));
        }
        Ok(())
    }

    /// Every direct-mode address is one users connect to by itself (the SSH
    /// config names the address, not the host), so one address must mean
    /// one vessel across the fleet. The placement statement only sees the
    /// reservations of the host it picks (`UNIQUE (host_id, address)`), so
    /// overlapping pools hand the same address out twice: the quick start's
    /// two "hosts" are one Docker engine on one network, and the second
    /// vessel failed with "Address already in use"; on a LAN, two hosts
    /// would answer ARP for one address. Reserving per network in SQL
    /// instead would need to know which hosts share an address space, which
    /// the config cannot say (one name on two engines is two bridges; two
    /// names under macvlan can be one LAN). Disjoint pools make it hold
    /// whatever the topology, checked once here. A pool must also stay off
    /// the gateway and every address the fleet itself uses (the hosts' SSH
    /// addresses, the API's).
    fn validate_pools(&self) -> Result<(), ConfigError> {
        let taken: Vec<(String, std::net::Ipv4Addr)> = self
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let addr: std::net::SocketAddrV4 = h.ssh.address.parse().ok()?;
                Some((format!("hosts[{i}].ssh.address"), *addr.ip()))
            })
            .chain(match self.listen.ip() {
                std::net::IpAddr::V4(ip) if !ip.is_unspecified() => {
                    Some(("listen".to_string(), ip))
                }
                _ => None,
            })
            .collect();
        let pools: Vec<(usize, ipnet::Ipv4Net)> = self
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.network.address_pool().map(|p| (i, p)))
            .collect();
        for (n, &(i, pool)) in pools.iter().enumerate() {
            let key = format!("hosts[{i}].network.pool");
            if let Some((what, ip)) = taken.iter().find(|(_, ip)| pool.contains(ip)) {
                return Err(invalid(key, format!("{pool} contains {ip} ({what})")));
            }
            if let Some(&(j, other)) = pools[..n]
                .iter()
                .find(|(_, other)| other.contains(&pool) || pool.contains(other))
            {
                return Err(invalid(
                    key,
                    format!("{pool} overlaps hosts[{j}]'s pool {other}; give each host its own part of the subnet"),
                ));
            }
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        if jsonwebtoken::DecodingKey::from_ed_pem(self.auth.service_public_key.expose().as_bytes())
            .is_err()
        {
            return Err(invalid(
                "auth.service_public_key",
                "is not an Ed25519 public key in PEM (make one: `openssl genpkey -algorithm ed25519 -out bot.key && openssl pkey -in bot.key -pubout -out bot.pub`)",
            ));
        }
        let known = |p: &String| vessel_api::perm::ALL.contains(&p.as_str());
        for (subject, m) in &self.auth.machines {
            if let Some(bad) = m.perms.iter().find(|p| !known(p)) {
                return Err(invalid(
                    format!("auth.machines.{subject}.perms"),
                    format!("`{bad}` is not a permission"),
                ));
            }
            if self.auth.admins.contains(subject) {
                return Err(invalid(
                    format!("auth.machines.{subject}"),
                    "is also in auth.admins; a machine is not a person",
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, o) in self.auth.oidc.iter().enumerate() {
            let key = format!("auth.oidc[{i}]");
            let name = o.name();
            if !crate::identity::valid_name(&name) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("`{name}` cannot qualify subjects: letters, digits, `.-_:` only, at most 64"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("`{name}` names another issuer too; give each its own"),
                ));
            }
            if o.issuer == self.auth.issuer {
                return Err(invalid(
                    format!("{key}.issuer"),
                    "is the service issuer; OIDC issuers must differ",
                ));
            }
            if let Some(bad) = o.grants.iter().find(|p| {
                !vessel_api::perm::ALL.contains(&p.as_str())
                    || vessel_api::perm::BOT_SERVICE.contains(&p.as_str())
            }) {
                return Err(invalid(
                    format!("{key}.grants"),
                    format!("`{bad}` is not a permission a person can have"),
                ));
            }
            if !(o.jwks_url.starts_with("https://") || o.jwks_url.starts_with("http://127.")) {
                return Err(invalid(
                    format!("{key}.jwks_url"),
                    "must be https (plain http only on loopback)",
                ));
            }
            if o.algorithms.is_empty()
                || o.algorithms
                    .iter()
                    .any(|a| !matches!(a.as_str(), "RS256" | "ES256"))
            {
                return Err(invalid(
                    format!("{key}.algorithms"),
                    "RS256 and/or ES256 only",
                ));
            }
        }
        Ok(())
    }

    /// One `[[hosts]]` entry (`key` is `hosts[i]`), past its name.
    fn validate_host(&self, key: &str, host: &HostSpec) -> Result<(), ConfigError> {
        if !self.queues.contains_key(host.queue.as_str()) {
            return Err(invalid(
                format!("{key}.queue"),
                format!("no queue `{}` in [queues]", host.queue),
            ));
        }
        if !host.ssh.key_path.is_file() {
            return Err(invalid(
                format!("{key}.ssh.key_path"),
                format!("no such file {}", host.ssh.key_path.display()),
            ));
        }
        if crate::sshkeys::parse_public_key(&host.ssh.host_key).is_err() {
            return Err(invalid(
                format!("{key}.ssh.host_key"),
                "not an OpenSSH public key (`ssh-ed25519 AAAA…`)",
            ));
        }
        if !host.home_root.is_absolute() {
            return Err(invalid(format!("{key}.home_root"), "must be absolute"));
        }
        if matches!(host.network, NetworkSpec::Tailscale { .. }) && self.tailnet.is_none() {
            return Err(invalid(
                format!("{key}.network.mode"),
                "is tailscale but there is no [tailnet] section",
            ));
        }
        validate_network(&format!("{key}.network"), &host.network)
    }

    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues.get(name)
    }

    /// Each queue's `disk` limit in bytes, for the queues that have one.
    pub fn disk_limits(&self) -> std::collections::HashMap<String, u64> {
        self.queues
            .iter()
            .filter_map(|(name, q)| q.disk.map(|d| (name.clone(), d.bytes())))
            .collect()
    }
}

fn validate_queue(name: &str, q: &QueueConfig) -> Result<(), ConfigError> {
    let key = format!("queues.{name}");
    QueueName::parse(name).map_err(|e| invalid(&key, e.to_string()))?;
    if q.cpus == 0 {
        return Err(invalid(format!("{key}.cpus"), "must be at least 1"));
    }
    if q.lifetime > q.max_lifetime {
        return Err(invalid(
            format!("{key}.lifetime"),
            "is longer than max_lifetime",
        ));
    }
    if q.warn_before >= q.hibernate_after {
        return Err(invalid(
            format!("{key}.warn_before"),
            "must be shorter than hibernate_after (the warning comes before it)",
        ));
    }
    if q.bury_hibernated_after.duration() <= std::time::Duration::from_secs(86_400) {
        return Err(invalid(
            format!("{key}.bury_hibernated_after"),
            "must be longer than a day (its owner is warned a day ahead)",
        ));
    }
    // Below this, the image's own files and the init's would not fit.
    if q.disk.is_some_and(|d| d.bytes() < 16 << 20) {
        return Err(invalid(format!("{key}.disk"), "must be at least 16M"));
    }
    Ok(())
}

fn validate_tailnet(t: &TailnetConfig) -> Result<(), ConfigError> {
    if !(t.api_url.starts_with("https://") || t.api_url.starts_with("http://127.")) {
        return Err(invalid(
            "tailnet.api_url",
            "must be https (plain http only on loopback)",
        ));
    }
    let oauth = t.oauth_client_id.is_some() && t.oauth_client_secret.is_some();
    if t.api_key.is_none() && !(oauth && t.provider == TailnetProvider::Tailscale) {
        return Err(invalid(
            "tailnet.api_key",
            "is needed (or, for Tailscale, oauth_client_id and oauth_client_secret)",
        ));
    }
    if t.provider == TailnetProvider::Headscale && t.user.is_none() {
        return Err(invalid(
            "tailnet.user",
            "Headscale needs the user that owns vessel nodes",
        ));
    }
    if t.tags
        .iter()
        .chain(t.user_tag.iter())
        .any(|tag| !tag.starts_with("tag:"))
    {
        return Err(invalid("tailnet.tags", "every tag starts with `tag:`"));
    }
    Ok(())
}

/// A host's `network` table (`key` is `hosts[i].network`).
fn validate_network(key: &str, network: &NetworkSpec) -> Result<(), ConfigError> {
    let docker_network = match network {
        NetworkSpec::Tailscale { docker_network, .. } => docker_network,
        NetworkSpec::Direct { docker_network, .. } => docker_network,
    };
    if !valid_label(docker_network) {
        return Err(invalid(
            format!("{key}.docker_network"),
            "letters, digits, `-` and `_` only",
        ));
    }
    let NetworkSpec::Direct {
        driver,
        parent,
        subnet,
        gateway,
        pool,
        ..
    } = network
    else {
        return Ok(());
    };
    if *driver == DirectDriver::Macvlan && parent.is_none() {
        return Err(invalid(
            format!("{key}.parent"),
            "macvlan needs the host's LAN interface",
        ));
    }
    if subnet.prefix_len() > 30 {
        return Err(invalid(format!("{key}.subnet"), "is too small"));
    }
    if gateway.is_some_and(|gw| !subnet.contains(&gw)) {
        return Err(invalid(format!("{key}.gateway"), "is outside the subnet"));
    }
    let Some(pool) = pool else {
        // On a LAN the whole subnet is never ours: its DHCP range, its
        // machines, the orchestrator live there.
        if *driver == DirectDriver::Macvlan {
            return Err(invalid(
                format!("{key}.pool"),
                "macvlan needs a pool: the part of the LAN no DHCP server or machine uses",
            ));
        }
        return Ok(());
    };
    if !subnet.contains(pool) {
        return Err(invalid(
            format!("{key}.pool"),
            format!("{pool} is outside the subnet {subnet}"),
        ));
    }
    let gateway = network.gateway().unwrap_or_else(|| first_host(subnet));
    if pool.contains(&gateway) {
        return Err(invalid(
            format!("{key}.pool"),
            format!("{pool} contains the gateway {gateway}"),
        ));
    }
    Ok(())
}

/// The subnet's first usable address, where Docker puts a gateway that is
/// not given.
pub fn first_host(subnet: &ipnet::Ipv4Net) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        database_url = "postgres://x"
        [auth]
        service_public_key = """
-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAV7hCdPe+3zliZ9BQx4XoFmzxqGAqArfQV0DHAPmsbuc=
-----END PUBLIC KEY-----
"""
        [queues.3090]
        gpus = 1
    "#;

    #[test]
    fn environment_overrides_nested_keys() {
        let mut table: toml::Table = toml::from_str(MINIMAL).unwrap();
        vessel_common::apply_env_overrides(
            &mut table,
            "VESSEL_",
            [
                ("VESSEL_CONDUCTOR__WORKERS".to_string(), "7".to_string()),
                ("VESSEL_FLEET".to_string(), "lab-a".to_string()),
            ]
            .into_iter(),
        );
        let config = Config::from_table(table, Path::new("."), "test").unwrap();
        assert_eq!(config.conductor.workers, 7);
        assert_eq!(config.fleet, "lab-a");
    }

    #[test]
    fn the_log_format_variable_is_not_a_config_key() {
        let mut table: toml::Table = toml::from_str(MINIMAL).unwrap();
        vessel_common::apply_env_overrides(
            &mut table,
            "VESSEL_",
            config_vars(
                [
                    ("VESSEL_LOG_FORMAT".to_string(), "json".to_string()),
                    ("VESSEL_FLEET".to_string(), "lab-a".to_string()),
                ]
                .into_iter(),
            ),
        );
        let config = Config::from_table(table, Path::new("."), "test").unwrap();
        assert_eq!(config.fleet, "lab-a");
    }

    #[test]
    fn errors_name_the_bad_key() {
        let text = MINIMAL.replace("[queues.3090]", "[queues.3090]\ncpus = 0");
        let err = Config::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.starts_with("queues.3090.cpus:"), "{err}");
        let garbled = MINIMAL.replace("MCowBQYDK2VwAyEA", "MCowBQYD");
        let err = Config::from_toml_str(&garbled).unwrap_err().to_string();
        assert!(err.starts_with("auth.service_public_key:"), "{err}");
        let robot_admin = MINIMAL.replace(
            "[queues.3090]",
            "admins = [\"prometheus\"]\n[auth.machines.prometheus]\nperms = [\"fleet:read\"]\n[queues.3090]",
        );
        let err = Config::from_toml_str(&robot_admin).unwrap_err().to_string();
        assert!(err.starts_with("auth.machines.prometheus:"), "{err}");
    }

    #[test]
    fn the_cli_table_must_name_a_trusted_issuer_and_an_accepted_client() {
        let oidc = "[[auth.oidc]]\nissuer = \"https://id.lab/\"\naudience = \"vessel\"\n\
                    jwks_url = \"https://id.lab/jwks\"\nallowed_clients = [\"vessel-cli\"]\n";
        let with = |cli: &str| format!("{MINIMAL}\n{oidc}[cli]\n{cli}");
        let ok = Config::from_toml_str(&with(
            "issuer = \"https://id.lab/\"\nclient_id = \"vessel-cli\"",
        ))
        .unwrap();
        assert_eq!(ok.cli.unwrap().scopes, ["openid"]);
        for (cli, key) in [
            (
                "issuer = \"https://other/\"\nclient_id = \"vessel-cli\"",
                "cli.issuer:",
            ),
            (
                "issuer = \"https://id.lab/\"\nclient_id = \"someone-else\"",
                "cli.client_id:",
            ),
            (
                "issuer = \"https://id.lab/\"\nclient_id = \"vessel cli\"",
                "cli.client_id:",
            ),
            (
                "issuer = \"https://id.lab/\"\nclient_id = \"vessel-cli\"\nscopes = [\"email\"]",
                "cli.scopes:",
            ),
        ] {
            let err = Config::from_toml_str(&with(cli)).unwrap_err().to_string();
            assert!(err.starts_with(key), "{cli}: {err}");
        }
    }

    /// A `[[hosts]]` table with a direct network; `network` is the rest of
    /// its `[hosts.network]` table.
    fn host(name: &str, ssh: &str, network: &str) -> String {
        format!(
            r#"
[[hosts]]
name = "{name}"
queue = "3090"
home_root = "/srv/homes"
[hosts.ssh]
address = "{ssh}:22"
key_path = "Cargo.toml"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBFYFDC2U7RZb9Yb8Uhsx0ut6mS2dRHKLrYhsSrY3h5G"
[hosts.network]
mode = "direct"
docker_network = "vessels"
{network}
"#
        )
    }

    fn with_hosts(hosts: &[String]) -> Result<Config, ConfigError> {
        Config::from_toml_str(&format!("{MINIMAL}{}", hosts.concat()))
    }

    const LAN: &str = "driver = \"macvlan\"\nparent = \"eno1\"\nsubnet = \"10.0.0.0/24\"";

    #[test]
    fn disjoint_pools_on_one_lan_are_accepted() {
        let config = with_hosts(&[
            host(
                "a",
                "10.0.0.10",
                &format!("{LAN}\npool = \"10.0.0.128/26\""),
            ),
            host(
                "b",
                "10.0.0.11",
                &format!("{LAN}\npool = \"10.0.0.192/26\""),
            ),
        ]);
        assert!(config.is_ok(), "{config:?}");
    }

    #[test]
    fn a_pool_overlapping_another_hosts_pool_is_refused() {
        let err = with_hosts(&[
            host(
                "a",
                "10.0.0.10",
                &format!("{LAN}\npool = \"10.0.0.128/25\""),
            ),
            host(
                "b",
                "10.0.0.11",
                &format!("{LAN}\npool = \"10.0.0.192/26\""),
            ),
        ])
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "hosts[1].network.pool: 10.0.0.192/26 overlaps hosts[0]'s pool 10.0.0.128/25; \
             give each host its own part of the subnet"
        );
    }

    #[test]
    fn the_quick_start_shape_one_bridge_shared_by_two_hosts_without_pools_is_refused() {
        let bridge = "subnet = \"10.213.0.0/24\"";
        let err = with_hosts(&[
            host("gpu", "127.0.0.2", bridge),
            host("cpu", "127.0.0.3", bridge),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("hosts[1].network.pool: 10.213.0.0/24 overlaps hosts[0]'s"),
            "{err}"
        );
    }

    #[test]
    fn macvlan_without_a_pool_is_refused() {
        let err = with_hosts(&[host("a", "10.0.0.10", LAN)])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("hosts[0].network.pool: macvlan needs a pool"),
            "{err}"
        );
    }

    #[test]
    fn a_pool_containing_the_gateway_is_refused() {
        let given = format!("{LAN}\ngateway = \"10.0.0.200\"\npool = \"10.0.0.128/25\"");
        let err = with_hosts(&[host("a", "10.0.0.10", &given)])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "hosts[0].network.pool: 10.0.0.128/25 contains the gateway 10.0.0.200"
        );
        // No gateway given: Docker's, the subnet's first address.
        let implied = format!("{LAN}\npool = \"10.0.0.0/25\"");
        let err = with_hosts(&[host("a", "10.0.0.200", &implied)])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "hosts[0].network.pool: 10.0.0.0/25 contains the gateway 10.0.0.1"
        );
    }

    #[test]
    fn a_pool_outside_its_subnet_is_refused() {
        let err = with_hosts(&[host(
            "a",
            "10.0.0.10",
            &format!("{LAN}\npool = \"10.0.1.0/25\""),
        )])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("hosts[0].network.pool: 10.0.1.0/25 is outside"),
            "{err}"
        );
    }

    #[test]
    fn a_pool_holding_a_hosts_or_the_orchestrators_address_is_refused() {
        let pool = format!("{LAN}\npool = \"10.0.0.128/25\"");
        let err = with_hosts(&[host("a", "10.0.0.130", &pool)])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "hosts[0].network.pool: 10.0.0.128/25 contains 10.0.0.130 (hosts[0].ssh.address)"
        );
        let text = format!(
            "listen = \"10.0.0.129:8700\"\nallow_plaintext = true\n{MINIMAL}{}",
            host("a", "10.0.0.10", &pool)
        );
        let err = Config::from_toml_str(&text).unwrap_err().to_string();
        assert_eq!(
            err,
            "hosts[0].network.pool: 10.0.0.128/25 contains 10.0.0.129 (listen)"
        );
    }

    #[test]
    fn plain_http_off_loopback_is_refused_unless_allowed() {
        let open = format!("listen = \"0.0.0.0:8700\"\n{MINIMAL}");
        let err = Config::from_toml_str(&open).unwrap_err().to_string();
        assert!(
            err.starts_with("listen: 0.0.0.0:8700 is not loopback"),
            "{err}"
        );
        let allowed = format!("listen = \"0.0.0.0:8700\"\nallow_plaintext = true\n{MINIMAL}");
        assert!(Config::from_toml_str(&allowed).is_ok());
    }

    #[test]
    fn a_tls_section_that_is_not_pem_names_its_key() {
        let text = format!("{MINIMAL}\n[tls]\ncert = \"not a certificate\"\nkey = \"nor a key\"\n");
        let err = Config::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.starts_with("tls.cert:"), "{err}");
    }

    #[test]
    fn the_portals_dev_sign_in_is_loopback_only_and_its_issuer_one_we_trust() {
        let key = crate::portal_config::tests::private_key_file("config");
        let dev = format!(
            "[portal]\ndev_sign_in = true\ndev_sign_in_key_file = \"{}\"\n",
            key.display()
        );
        let open = format!("listen = \"0.0.0.0:8700\"\nallow_plaintext = true\n{MINIMAL}\n{dev}");
        let err = Config::from_toml_str(&open).unwrap_err().to_string();
        assert!(err.starts_with("portal.dev_sign_in:"), "{err}");
        let local = format!("{MINIMAL}\n{dev}");
        assert!(Config::from_toml_str(&local).is_ok());
        let stranger = format!(
            "{MINIMAL}\n[portal.oidc]\nissuer = \"https://nobody.example/\"\nclient_id = \"p\"\naudience = \"a\"\n"
        );
        let err = Config::from_toml_str(&stranger).unwrap_err().to_string();
        assert!(err.starts_with("portal.oidc.issuer:"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        let config = Config::from_toml_str(MINIMAL).unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("postgres://x"));
    }

    #[test]
    fn schedules_default_to_the_old_intervals_and_bad_ones_name_their_key() {
        let config = Config::from_toml_str(MINIMAL).unwrap();
        assert_eq!(config.undertaker.schedule().unwrap().cron, "0 */30 * * * *");
        assert_eq!(config.reconciler.schedule().unwrap().cron, "0 */5 * * * *");
        assert_eq!(
            config.conductor.probe_schedule().unwrap().cron,
            "0 * * * * *"
        );
        assert_eq!(
            config.watchdog.stale_after(),
            std::time::Duration::from_secs(45),
            "three scrape intervals"
        );
        let with = |extra: &str| Config::from_toml_str(&format!("{MINIMAL}\n{extra}"));
        // The older interval keys still work when they fit a schedule.
        let old = with("[undertaker]\nevery = \"30m\"\n[reconciler]\nevery = \"5m\"").unwrap();
        assert_eq!(old.undertaker.schedule().unwrap().cron, "0 */30 * * * *");
        assert_eq!(old.reconciler.schedule().unwrap().key, "reconciler.every");
        let cases = [
            (
                "[undertaker]\nschedule = \"*/30 * * * *\"",
                "undertaker.schedule:",
            ),
            (
                "[reconciler]\nschedule = \"0 */5 * * * mon-fry\"",
                "reconciler.schedule:",
            ),
            (
                "[conductor]\nprobe_schedule = \"0 61 * * * *\"",
                "conductor.probe_schedule:",
            ),
            (
                "[conductor]\nprobe_interval = \"7m\"",
                "conductor.probe_interval:",
            ),
            (
                "[undertaker]\nevery = \"30m\"\nschedule = \"0 */30 * * * *\"",
                "undertaker.every:",
            ),
            ("[watchdog]\nschedule = \"soon\"", "watchdog.schedule:"),
            (
                "[watchdog]\nscrape_interval = \"15s\"\nstale_after = \"10s\"",
                "watchdog.stale_after:",
            ),
            ("[watchdog]\nstale_after = \"2h\"", "watchdog.lookback:"),
        ];
        for (extra, key) in cases {
            let err = with(extra).unwrap_err().to_string();
            assert!(err.starts_with(key), "{extra}: {err}");
        }
    }
}
