//! What each command does: read the sign-in, call the orchestrator through
//! the contract's typed `Client`, print text or `--json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use vessel_api::grammar;
use vessel_api::vessels::{CreateVessel, ListQuery, VesselView};
use vessel_api::{Client, ErrorCode, VesselState};

use crate::args::{self, Cli, Command};
use crate::error::{from_client, CliError};
use crate::oidc::{self, Provider};
use crate::session::{Credentials, SsoSession};
use crate::{paths, render, sshconf, wait};

/// The quick start's orchestrator.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8700";

pub const CREATE_USAGE: &str =
    "vessel create [gpu=N] [queue=Q] [cpu=N] [mem=64G] [image=I] [name=N] [for=2d] [--wait | --no-wait]";

/// The create words as the bot reads them: the one shared grammar, its
/// messages word for word.
pub fn create_request<S: AsRef<str>>(words: &[S]) -> Result<CreateVessel, CliError> {
    grammar::parse_create(words.iter().map(AsRef::as_ref))
        .map_err(|e| CliError::usage(e.0, CREATE_USAGE))
}

/// A signed-in session with one orchestrator.
pub struct Ctx {
    pub server: String,
    pub client: Client,
    creds: Credentials,
    pub json: bool,
}

fn client_for(server: &str) -> Result<Client, CliError> {
    Client::new(server, Duration::from_secs(30))
        .map(|c| c.with_via("vessel-cli"))
        .map_err(|e| CliError::user(e.to_string()))
}

impl Ctx {
    fn open(cli: &Cli) -> Result<Ctx, CliError> {
        let creds = Credentials::load()?.ok_or(CliError::NotLoggedIn)?;
        if let Some(server) = &cli.server {
            if server.trim_end_matches('/') != creds.server.trim_end_matches('/') {
                return Err(CliError::user(format!(
                    "you are signed in to {}, not {server}: run `vessel login --server {server}`",
                    creds.server
                )));
            }
        }
        Ok(Ctx {
            server: creds.server.clone(),
            client: client_for(&creds.server)?,
            creds,
            json: cli.json,
        })
    }

    pub async fn token(&mut self) -> Result<String, CliError> {
        self.creds.fresh_token().await
    }

    /// `--json` prints the value; otherwise the text.
    pub fn show<T: Serialize>(&self, value: &T, text: impl FnOnce(&T) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            print!("{}", text(value));
        }
    }

    /// A vessel by name or id; an unknown one is named along with what
    /// exists.
    pub async fn vessel(&mut self, name: &str) -> Result<VesselView, CliError> {
        let token = self.token().await?;
        match self.client.show(&token, name).await {
            Ok(v) => Ok(v),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Err(self.unknown(name).await),
            Err(e) => Err(from_client(format!("cannot read vessel {name}"), e)),
        }
    }

    /// "no vessel `x`; yours are a, b".
    pub async fn unknown(&mut self, name: &str) -> CliError {
        let names = match self.token().await {
            Ok(token) => self
                .client
                .list(&token, &ListQuery::default())
                .await
                .map(|l| {
                    l.vessels
                        .into_iter()
                        .map(|v| v.name.to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        CliError::NotFound(if names.is_empty() {
            format!("no vessel `{name}`: you have none (vessel create …)")
        } else {
            format!("no vessel `{name}`; yours: {}", names.join(", "))
        })
    }

    /// Maps a refusal about `name` (404 → what exists).
    async fn about(&mut self, name: &str, what: &str, e: vessel_api::ClientError) -> CliError {
        if e.code() == Some(ErrorCode::NotFound) {
            return self.unknown(name).await;
        }
        from_client(what, e)
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Login(login) => return do_login(&cli, login).await,
        Command::Logout => {
            let removed = Credentials::remove()?;
            eprintln!(
                "{}",
                if removed {
                    "Signed out on this machine."
                } else {
                    "You were not signed in."
                }
            );
            return Ok(());
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "vessel", &mut std::io::stdout());
            return Ok(());
        }
        Command::Create(c) => {
            // Checked before anything else, so a typo is told at once and
            // the same way as in Slack, signed in or not.
            create_request(&c.words)?;
        }
        _ => {}
    }
    let mut ctx = Ctx::open(&cli)?;
    match cli.command {
        Command::Login(_) | Command::Logout | Command::Completions { .. } => Ok(()),
        Command::Whoami => {
            let token = ctx.token().await?;
            let me = ctx
                .client
                .me(&token)
                .await
                .map_err(|e| from_client("cannot read who you are", e))?;
            let server = ctx.server.clone();
            ctx.show(&me, |m| render::me(m, &server));
            Ok(())
        }
        Command::Create(c) => create(&mut ctx, &c).await,
        Command::Ls(ls) => {
            let token = ctx.token().await?;
            let list = ctx
                .client
                .list(
                    &token,
                    &ListQuery {
                        all: ls.all,
                        ended: ls.ended,
                        owner: None,
                    },
                )
                .await
                .map_err(|e| from_client("cannot list vessels", e))?;
            ctx.show(&list, |l| render::vessels(&l.vessels));
            Ok(())
        }
        Command::Show { name } => {
            let v = ctx.vessel(&name).await?;
            ctx.show(&v, render::vessel);
            Ok(())
        }
        Command::Ssh(s) => crate::ssh::ssh(&mut ctx, &s.name, s.identity, &s.command).await,
        Command::Code(c) => crate::ssh::code(&mut ctx, &c.name, c.identity).await,
        Command::ConfigSsh(c) => config_ssh(&mut ctx, c.file, c.identity).await,
        Command::Extend { name, by } => {
            let by = grammar::parse_span(&by)
                .map_err(|e| CliError::usage(e.0, "vessel extend NAME [24h]"))?;
            let token = ctx.token().await?;
            let v = match ctx.client.extend(&token, &name, by).await {
                Ok(v) => v,
                Err(e) => return Err(ctx.about(&name, "cannot extend", e).await),
            };
            ctx.show(&v, |v| {
                format!(
                    "{} now expires {}\n",
                    v.name,
                    v.expires_at
                        .with_timezone(&chrono::Local)
                        .format("%a %d %b %H:%M")
                )
            });
            Ok(())
        }
        Command::Keep { name, for_ } => {
            let for_ = for_
                .map(|f| grammar::parse_span(&f))
                .transpose()
                .map_err(|e| CliError::usage(e.0, "vessel keep NAME [FOR]"))?;
            let token = ctx.token().await?;
            let v = match ctx.client.keep(&token, &name, for_).await {
                Ok(v) => v,
                Err(e) => return Err(ctx.about(&name, "cannot keep", e).await),
            };
            ctx.show(&v, |v| format!("{} is kept from idle reclaim.\n", v.name));
            Ok(())
        }
        Command::Kill { name } => {
            let token = ctx.token().await?;
            let v = match ctx.client.kill(&token, &name).await {
                Ok(v) => v,
                Err(e) => return Err(ctx.about(&name, "cannot kill", e).await),
            };
            ctx.show(&v, |v| match v.state {
                VesselState::Buried => format!("{} is cancelled.\n", v.name),
                _ => format!("{} is stopping.\n", v.name),
            });
            Ok(())
        }
        Command::Keys(k) => keys(&mut ctx, k).await,
        Command::Queue => {
            let token = ctx.token().await?;
            let line = ctx
                .client
                .line(&token)
                .await
                .map_err(|e| from_client("cannot read the line", e))?;
            ctx.show(&line, render::line);
            Ok(())
        }
        Command::Fleet(f) => {
            let token = ctx.token().await?;
            if let Some(args::FleetView::Front { vessel }) = &f.view {
                let v = match ctx.client.to_front(&token, vessel).await {
                    Ok(v) => v,
                    Err(e) => return Err(ctx.about(vessel, "cannot move it", e).await),
                };
                ctx.show(&v, |v| match &v.line {
                    Some(p) => format!("{} is now {}\n", v.name, render::place(p)),
                    None => format!("{} is {}\n", v.name, v.state),
                });
                return Ok(());
            }
            let fleet = ctx
                .client
                .fleet(&token)
                .await
                .map_err(|e| from_client("cannot read the fleet", e))?;
            if f.view.is_some() {
                ctx.show(&fleet.queues, |_| render::fleet_queues(&fleet));
            } else {
                ctx.show(&fleet, render::fleet);
            }
            Ok(())
        }
        Command::Drain { host } => set_host(&mut ctx, &host, true).await,
        Command::Undrain { host } => set_host(&mut ctx, &host, false).await,
    }
}

async fn set_host(ctx: &mut Ctx, host: &str, drain: bool) -> Result<(), CliError> {
    let token = ctx.token().await?;
    let change = ctx
        .client
        .set_host(&token, host, drain)
        .await
        .map_err(|e| match e.code() {
            Some(ErrorCode::NotFound) => CliError::NotFound(format!("no host `{host}`")),
            _ => from_client(format!("cannot change host {host}"), e),
        })?;
    ctx.show(&change, |c| {
        format!(
            "{} is {} (was {}).\n",
            c.host,
            c.state.as_str(),
            c.was.as_str()
        )
    });
    Ok(())
}

async fn create(ctx: &mut Ctx, c: &args::Create) -> Result<(), CliError> {
    let mut request = create_request(&c.words)?;
    if c.no_wait {
        request.wait = Some(false);
    }
    if request.queue.is_none() {
        let token = ctx.token().await?;
        let queues = ctx
            .client
            .fleet(&token)
            .await
            .map(|f| {
                f.queues
                    .keys()
                    .map(|q| q.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        return Err(CliError::usage(
            if queues.is_empty() {
                "which queue? add queue=Q".to_string()
            } else {
                format!("which queue? add queue=Q (queues: {queues})")
            },
            CREATE_USAGE,
        ));
    }
    let token = ctx.token().await?;
    let v = ctx
        .client
        .create(&token, &request)
        .await
        .map_err(|e| from_client("the request was not taken", e))?;
    if !c.wait {
        ctx.show(&v, |v| match (&v.state, &v.line) {
            (VesselState::Pending, Some(p)) => format!(
                "{} is waiting in line for {}: {}\nFollow it: vessel show {}\n",
                v.name,
                v.queue,
                render::place(p),
                v.name
            ),
            _ => format!(
                "{} is {} on {}.\nFollow it: vessel show {} (or create with --wait next time)\n",
                v.name,
                v.state,
                v.host.as_deref().unwrap_or("a host"),
                v.name
            ),
        });
        return Ok(());
    }
    let ran = wait::follow(ctx, v).await?;
    if ctx.json {
        ctx.show(&ran, |_| String::new());
        return Ok(());
    }
    let identity = crate::ssh::identity(None)?;
    if let Some(entry) = sshconf::Entry::of(&ran) {
        // Its own known-hosts file, so the block works pasted anywhere.
        let known = crate::ssh::pin(&entry)?;
        println!(
            "\n# SSH config for {name} (host key pinned; `vessel config-ssh` keeps every running vessel's in ~/.ssh/config.d/vessel):\n{block}\n# known_hosts ({known}):\n{line}\n\nLog in: vessel ssh {name}    VS Code: vessel code {name}",
            name = ran.name,
            block = sshconf::block(&entry, &known, identity.as_deref()).trim_end(),
            known = known.display(),
            line = entry.known_hosts,
        );
    }
    Ok(())
}

async fn config_ssh(
    ctx: &mut Ctx,
    file: Option<PathBuf>,
    identity: Option<PathBuf>,
) -> Result<(), CliError> {
    let token = ctx.token().await?;
    let list = ctx
        .client
        .list(&token, &ListQuery::default())
        .await
        .map_err(|e| from_client("cannot list vessels", e))?;
    let entries: Vec<sshconf::Entry> = list.vessels.iter().filter_map(sshconf::Entry::of).collect();
    let layout = sshconf::Layout::new(file)?;
    let identity = crate::ssh::identity(identity)?;
    let outcome = sshconf::apply(&layout, &entries, identity.as_deref())?;
    if ctx.json {
        let names: Vec<&str> = entries.iter().map(|e| e.alias.as_str()).collect();
        println!(
            "{}",
            serde_json::json!({
                "file": layout.file,
                "known_hosts": layout.known_hosts,
                "hosts": names,
                "changed": outcome.file_changed || outcome.include_added,
                "include_added": outcome.include_added,
            })
        );
        return Ok(());
    }
    let names: Vec<&str> = entries.iter().map(|e| e.alias.as_str()).collect();
    println!(
        "{} {} ({})",
        if outcome.file_changed {
            "Updated"
        } else {
            "Unchanged:"
        },
        layout.file.display(),
        if names.is_empty() {
            "no running vessels".to_string()
        } else {
            names.join(", ")
        }
    );
    if outcome.include_added {
        println!(
            "Added `Include {}` to the top of {}{}",
            layout.file.display(),
            layout.user_config.display(),
            outcome
                .backup
                .map(|b| format!(" (the old one is {})", b.display()))
                .unwrap_or_default()
        );
    }
    if let Some(first) = names.first() {
        println!("Now: ssh {first}");
    }
    Ok(())
}

async fn keys(ctx: &mut Ctx, k: args::Keys) -> Result<(), CliError> {
    let token = ctx.token().await?;
    match k {
        args::Keys::Ls => {
            let keys = ctx
                .client
                .keys(&token)
                .await
                .map_err(|e| from_client("cannot list keys", e))?;
            ctx.show(&keys, |k| render::keys(&k.keys));
        }
        args::Keys::Add { file } => {
            let file = match file {
                Some(f) => f,
                None => paths::ssh_dir()?.join("id_ed25519.pub"),
            };
            if file.extension().is_none_or(|e| e != "pub") && file.with_extension("pub").is_file() {
                return Err(CliError::user(format!(
                    "{} looks like a private key; give the public half, {}",
                    file.display(),
                    file.with_extension("pub").display()
                )));
            }
            let text = std::fs::read_to_string(&file).map_err(|e| {
                CliError::user(format!(
                    "cannot read {}: {e} (make a key: ssh-keygen -t ed25519)",
                    file.display()
                ))
            })?;
            let added = ctx
                .client
                .add_key(&token, text.trim())
                .await
                .map_err(|e| from_client(format!("{} was not added", file.display()), e))?;
            remember_identity(&file)?;
            ctx.show(&added, |a| {
                if a.added {
                    format!("Added {}.\n", a.fingerprint)
                } else {
                    format!("{} was already registered.\n", a.fingerprint)
                }
            });
        }
        args::Keys::Rm { fingerprint } => {
            ctx.client
                .remove_key(&token, &fingerprint)
                .await
                .map_err(|e| match e.code() {
                    Some(ErrorCode::NotFound) => {
                        CliError::NotFound(format!("no key {fingerprint}: see `vessel keys ls`"))
                    }
                    _ => from_client("the key was not removed", e),
                })?;
            if !ctx.json {
                println!("Removed {fingerprint}.");
            }
        }
    }
    Ok(())
}

/// The private half of the key last added, for `ssh` and `config-ssh`.
fn remember_identity(public: &Path) -> Result<(), CliError> {
    let private = public.with_extension("");
    if !private.is_file() {
        return Ok(());
    }
    let private = std::fs::canonicalize(&private).unwrap_or(private);
    let dir = paths::config_dir()?;
    paths::private_dir(&dir)?;
    paths::write_private(
        &dir.join("identity"),
        format!("{}\n", private.display()).as_bytes(),
        0o600,
    )
}

async fn do_login(cli: &Cli, login: &args::Login) -> Result<(), CliError> {
    let previous = Credentials::load().ok().flatten();
    let server = cli
        .server
        .clone()
        .or_else(|| previous.as_ref().map(|c| c.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    let client = client_for(&server)?;
    let creds = match &login.token_file {
        Some(file) => {
            let token = read_token(file)?;
            let tokens: oidc::Tokens =
                serde_json::from_value(serde_json::json!({ "access_token": token }))
                    .expect("a token response");
            Credentials::from_tokens(server.clone(), &tokens, None)
        }
        None => sso_login(&server, &client, login.no_browser).await?,
    };
    // Proves the token before keeping it.
    let me = client
        .me(&creds.access_token)
        .await
        .map_err(|e| match e.code() {
            Some(ErrorCode::Unauthorized) => CliError::Refused(format!(
                "the orchestrator at {server} refused the token: {e}"
            )),
            _ => from_client(format!("cannot sign in to {server}"), e),
        })?;
    let path = creds.save()?;
    eprintln!(
        "Signed in to {server} as {} (unix name {}). Kept in {}.",
        me.id,
        me.unix_name,
        path.display()
    );
    if me.keys.is_empty() {
        eprintln!("Next: vessel keys add   (registers ~/.ssh/id_ed25519.pub)");
    }
    Ok(())
}

fn read_token(file: &Path) -> Result<String, CliError> {
    let text = if file == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(CliError::io("cannot read the token from standard input"))?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| {
            CliError::user(format!(
                "cannot read the token file {}: {e}",
                file.display()
            ))
        })?
    };
    let token = text.trim().to_string();
    if token.is_empty() || token.contains(char::is_whitespace) || token.split('.').count() != 3 {
        return Err(CliError::user(format!(
            "{} does not hold one token (print one with `vessel-orchestrator token SUBJECT --key FILE`)",
            file.display()
        )));
    }
    Ok(token)
}

async fn sso_login(
    server: &str,
    client: &Client,
    no_browser: bool,
) -> Result<Credentials, CliError> {
    let config = client
        .sign_in_config()
        .await
        .map_err(|e| from_client(format!("cannot ask {server} where to sign in"), e))?
        .ok_or_else(|| {
            CliError::Refused(format!(
                "{server} has no single sign-on for the CLI; ask an operator for a token and run `vessel login --token-file FILE`"
            ))
        })?;
    let provider = Provider::new()?;
    let doc = provider.discover(&config.issuer).await?;
    let code = provider.device_code(&doc, &config).await?;
    let url = code
        .verification_uri_complete
        .clone()
        .unwrap_or_else(|| code.verification_uri.clone());
    eprintln!(
        "To sign in, open {}\nand enter the code {}\n(waiting for you; it expires in {} minutes)",
        code.verification_uri,
        code.user_code,
        code.expires_in.div_ceil(60)
    );
    if !no_browser {
        open_browser(&url);
    }
    let tokens = provider.poll(&doc, &config.client_id, &code).await?;
    Ok(Credentials::from_tokens(
        server.to_string(),
        &tokens,
        Some(SsoSession {
            issuer: config.issuer,
            client_id: config.client_id,
            token_endpoint: doc.token_endpoint,
            refresh_token: tokens.refresh_token.clone(),
        }),
    ))
}

/// Best effort, and only where there is a display: on a server over SSH
/// the address and code are enough.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        Some("open")
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        Some("xdg-open")
    } else {
        None
    };
    if let Some(cmd) = opener {
        let _ = std::process::Command::new(cmd)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}
