//! What each command does: read the sign-in, call the orchestrator through
//! the contract's typed `Client`, print text or `--json`. `run` only
//! dispatches; each command is a function of its own.

use std::path::{Path, PathBuf};

use vessel_api::grammar;
use vessel_api::vessels::{CreateVessel, ListQuery, VesselView};
use vessel_api::{ErrorCode, VesselState};

use crate::args::{self, Cli, Command};
use crate::ctx::Ctx;
use crate::error::{from_client, CliError};
use crate::vessel::Vessel;
use crate::{login, paths, render, ssh, sshconf, wait};

pub const CREATE_USAGE: &str =
    "vessel create [gpu=N] [queue=Q] [cpu=N] [mem=64G] [image=I] [name=N] [for=2d] [--wait | --no-wait]";

/// The create words as the bot reads them: the one shared grammar, its
/// messages word for word.
pub fn create_request<S: AsRef<str>>(words: &[S]) -> Result<CreateVessel, CliError> {
    grammar::parse_create(words.iter().map(AsRef::as_ref))
        .map_err(|e| CliError::usage(e.0, CREATE_USAGE))
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Login(l) => login::login(cli.server.as_deref(), &l).await,
        Command::Logout => login::logout(),
        Command::Completions { shell } => {
            completions(shell);
            Ok(())
        }
        command => {
            if let Command::Create(c) = &command {
                // Checked before anything else, so a typo is told at once
                // and the same way as in Slack, signed in or not.
                create_request(&c.words)?;
            }
            let mut ctx = Ctx::open(cli.server.as_deref(), cli.json)?;
            signed_in(&mut ctx, command).await
        }
    }
}

/// The commands that act with the stored sign-in.
async fn signed_in(ctx: &mut Ctx, command: Command) -> Result<(), CliError> {
    match command {
        // Handled by `run` before any sign-in is read.
        Command::Login(_) | Command::Logout | Command::Completions { .. } => Ok(()),
        Command::Whoami => whoami(ctx).await,
        Command::Create(c) => create(ctx, &c).await,
        Command::Ls(ls) => list(ctx, &ls).await,
        Command::Show { name } => show(ctx, &name).await,
        Command::Ssh(s) => ssh::ssh(ctx, &s.name, s.identity, &s.command).await,
        Command::Code(c) => ssh::code(ctx, &c.name, c.identity).await,
        Command::Jupyter(j) => ssh::jupyter(ctx, &j.name, j.identity, j.port, j.no_browser).await,
        Command::ConfigSsh(c) => config_ssh(ctx, c.file, c.identity).await,
        Command::Extend { name, by } => extend(ctx, &name, &by).await,
        Command::Keep { name, for_ } => keep(ctx, &name, for_.as_deref()).await,
        Command::Kill { name } => kill(ctx, &name).await,
        Command::Hibernate { name } => hibernate(ctx, &name).await,
        Command::Wake {
            name,
            wait,
            anywhere,
        } => wake(ctx, &name, wait, anywhere).await,
        Command::Keys(args::Keys::Ls) => keys_ls(ctx).await,
        Command::Keys(args::Keys::Add { file }) => keys_add(ctx, file).await,
        Command::Keys(args::Keys::Rm { fingerprint }) => keys_rm(ctx, &fingerprint).await,
        Command::Queue => queue(ctx).await,
        Command::Fleet(f) => fleet(ctx, f.view).await,
        Command::Drain { host } => set_host(ctx, &host, true).await,
        Command::Undrain { host } => set_host(ctx, &host, false).await,
        Command::Link {
            user,
            issuer,
            subject,
        } => match (issuer, subject) {
            (Some(issuer), Some(subject)) => link(ctx, &user, issuer, subject).await,
            _ => links(ctx, &user).await,
        },
        Command::Unlink {
            user,
            issuer,
            subject,
        } => unlink(ctx, &user, &issuer, &subject).await,
    }
}

async fn links(ctx: &mut Ctx, user: &str) -> Result<(), CliError> {
    let token = ctx.token().await?;
    let list = ctx
        .client
        .links(&token, user)
        .await
        .map_err(|e| from_client(format!("cannot list {user}'s links"), e))?;
    ctx.show(&list, |l| {
        if l.links.is_empty() {
            return format!("{user} has no linked identities.\n");
        }
        l.links
            .iter()
            .map(|k| {
                format!(
                    "{}@{} is {user} (linked by {})\n",
                    k.subject, k.issuer, k.linked_by
                )
            })
            .collect()
    });
    Ok(())
}

async fn link(ctx: &mut Ctx, user: &str, issuer: String, subject: String) -> Result<(), CliError> {
    let token = ctx.token().await?;
    let body = vessel_api::users::LinkIdentity { issuer, subject };
    let done = ctx.client.link(&token, user, &body).await.map_err(|e| {
        from_client(
            format!("cannot link {}@{} to {user}", body.subject, body.issuer),
            e,
        )
    })?;
    ctx.show(&done, |l| {
        format!(
            "{}@{} now acts as {}: their vessels, keys and role.\n",
            l.subject, l.issuer, l.user
        )
    });
    Ok(())
}

async fn unlink(ctx: &mut Ctx, user: &str, issuer: &str, subject: &str) -> Result<(), CliError> {
    let token = ctx.token().await?;
    ctx.client
        .unlink(&token, user, issuer, subject)
        .await
        .map_err(|e| from_client(format!("cannot unlink {subject}@{issuer} from {user}"), e))?;
    if !ctx.json {
        println!("{subject}@{issuer} is no longer {user}; it is {subject}@{issuer} again.");
    }
    Ok(())
}

fn completions(shell: clap_complete::Shell) {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "vessel", &mut std::io::stdout());
}

async fn whoami(ctx: &mut Ctx) -> Result<(), CliError> {
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

async fn list(ctx: &mut Ctx, ls: &args::Ls) -> Result<(), CliError> {
    let query = ListQuery {
        all: ls.all,
        ended: ls.ended,
        owner: None,
    };
    let list = ctx.vessels(&query).await?;
    ctx.show(&list, |l| {
        let views: Vec<VesselView> = l.vessels.iter().map(|v| v.view.clone()).collect();
        render::vessels(&views)
    });
    Ok(())
}

async fn show(ctx: &mut Ctx, name: &str) -> Result<(), CliError> {
    let v = ctx.vessel(name).await?;
    ctx.show(&v, |v| render::vessel(&v.view));
    Ok(())
}

async fn extend(ctx: &mut Ctx, name: &str, by: &str) -> Result<(), CliError> {
    let by =
        grammar::parse_span(by).map_err(|e| CliError::usage(e.0, "vessel extend NAME [24h]"))?;
    let token = ctx.token().await?;
    let v = match ctx.client.extend(&token, name, by).await {
        Ok(v) => Vessel::parse(v)?.view,
        Err(e) => return Err(ctx.about(name, "cannot extend", e).await),
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

async fn keep(ctx: &mut Ctx, name: &str, for_: Option<&str>) -> Result<(), CliError> {
    let for_ = for_
        .map(grammar::parse_span)
        .transpose()
        .map_err(|e| CliError::usage(e.0, "vessel keep NAME [FOR]"))?;
    let token = ctx.token().await?;
    let v = match ctx.client.keep(&token, name, for_).await {
        Ok(v) => Vessel::parse(v)?.view,
        Err(e) => return Err(ctx.about(name, "cannot keep", e).await),
    };
    ctx.show(&v, |v| format!("{} is kept from idle reclaim.\n", v.name));
    Ok(())
}

async fn kill(ctx: &mut Ctx, name: &str) -> Result<(), CliError> {
    let token = ctx.token().await?;
    let v = match ctx.client.kill(&token, name).await {
        Ok(v) => Vessel::parse(v)?.view,
        Err(e) => return Err(ctx.about(name, "cannot kill", e).await),
    };
    ctx.show(&v, |v| match v.state {
        VesselState::Buried => format!("{} is cancelled.\n", v.name),
        _ => format!("{} is stopping.\n", v.name),
    });
    Ok(())
}

async fn hibernate(ctx: &mut Ctx, name: &str) -> Result<(), CliError> {
    let token = ctx.token().await?;
    let v = match ctx.client.hibernate(&token, name).await {
        Ok(v) => Vessel::parse(v)?.view,
        Err(e) => return Err(ctx.about(name, "cannot hibernate", e).await),
    };
    ctx.show(&v, |v| {
        format!(
            "{} is {}: its processes end; its files, address and host key are kept. `vessel wake {}` brings it back.\n",
            v.name, v.state, v.name
        )
    });
    Ok(())
}

async fn wake(ctx: &mut Ctx, name: &str, follow: bool, anywhere: bool) -> Result<(), CliError> {
    let token = ctx.token().await?;
    let body = vessel_api::vessels::WakeVessel { anywhere };
    let v = match ctx.client.wake(&token, name, &body).await {
        Ok(v) => Vessel::parse(v)?,
        Err(e) => return Err(ctx.about(name, "cannot wake", e).await),
    };
    if !follow {
        ctx.show(&v, |v| taken(&v.view));
        return Ok(());
    }
    let ran = wait::follow(ctx, v).await?;
    if ctx.json {
        ctx.show(&ran, |_| String::new());
        return Ok(());
    }
    print_ssh_access(&ran)
}

async fn queue(ctx: &mut Ctx) -> Result<(), CliError> {
    let token = ctx.token().await?;
    let line = ctx
        .client
        .line(&token)
        .await
        .map_err(|e| from_client("cannot read the line", e))?;
    ctx.show(&line, render::line);
    Ok(())
}

async fn fleet(ctx: &mut Ctx, view: Option<args::FleetView>) -> Result<(), CliError> {
    if let Some(args::FleetView::Front { vessel }) = &view {
        return to_front(ctx, vessel).await;
    }
    let token = ctx.token().await?;
    let fleet = ctx
        .client
        .fleet(&token)
        .await
        .map_err(|e| from_client("cannot read the fleet", e))?;
    if view.is_some() {
        ctx.show(&fleet.queues, |_| render::fleet_queues(&fleet));
    } else {
        ctx.show(&fleet, render::fleet);
    }
    Ok(())
}

/// `fleet front VESSEL` (admins).
async fn to_front(ctx: &mut Ctx, vessel: &str) -> Result<(), CliError> {
    let token = ctx.token().await?;
    let v = match ctx.client.to_front(&token, vessel).await {
        Ok(v) => Vessel::parse(v)?.view,
        Err(e) => return Err(ctx.about(vessel, "cannot move it", e).await),
    };
    ctx.show(&v, |v| match &v.line {
        Some(p) => format!("{} is now {}\n", v.name, render::place(p)),
        None => format!("{} is {}\n", v.name, v.state),
    });
    Ok(())
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
        return Err(which_queue(ctx).await);
    }
    let token = ctx.token().await?;
    let v = ctx
        .client
        .create(&token, &request)
        .await
        .map_err(|e| from_client("the request was not taken", e))?;
    let v = Vessel::parse(v)?;
    if !c.wait {
        ctx.show(&v, |v| taken(&v.view));
        return Ok(());
    }
    let ran = wait::follow(ctx, v).await?;
    if ctx.json {
        ctx.show(&ran, |_| String::new());
        return Ok(());
    }
    print_ssh_access(&ran)
}

/// A create without a queue: which queues there are.
async fn which_queue(ctx: &mut Ctx) -> CliError {
    let queues = match ctx.token().await {
        Ok(token) => ctx
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
            .unwrap_or_default(),
        Err(e) => return e,
    };
    CliError::usage(
        if queues.is_empty() {
            "which queue? add queue=Q".to_string()
        } else {
            format!("which queue? add queue=Q (queues: {queues})")
        },
        CREATE_USAGE,
    )
}

/// What a create without `--wait` says: its place in line, or where it
/// starts.
fn taken(v: &VesselView) -> String {
    match (&v.state, &v.line) {
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
    }
}

/// After `create --wait`: the vessel's Host block, pinned by a known-hosts
/// file of its own so the block works pasted anywhere.
fn print_ssh_access(ran: &Vessel) -> Result<(), CliError> {
    let identity = ssh::identity(None)?;
    let Some(entry) = &ran.login else {
        return Ok(());
    };
    let known = ssh::pin(entry)?;
    println!(
        "\n# SSH config for {name} (host key pinned; `vessel config-ssh` keeps every running vessel's in ~/.ssh/config.d/vessel):\n{block}\n# known_hosts ({known}):\n{line}\n\nLog in: vessel ssh {name}    VS Code: vessel code {name}",
        name = ran.view.name,
        block = sshconf::block(entry, &known, identity.as_deref()).trim_end(),
        known = known.display(),
        line = entry.known_hosts,
    );
    Ok(())
}

async fn config_ssh(
    ctx: &mut Ctx,
    file: Option<PathBuf>,
    identity: Option<PathBuf>,
) -> Result<(), CliError> {
    let vessels = ctx.vessels(&ListQuery::default()).await?;
    let entries = vessels.logins();
    let layout = sshconf::Layout::new(file)?;
    let identity = ssh::identity(identity)?;
    let outcome = sshconf::apply(&layout, &entries, identity.as_deref())?;
    let names: Vec<&str> = entries.iter().map(|e| e.alias.as_str()).collect();
    if ctx.json {
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
    } else {
        print!("{}", configured(&layout, &outcome, &names));
    }
    Ok(())
}

/// What `config-ssh` says it did.
fn configured(layout: &sshconf::Layout, outcome: &sshconf::Outcome, names: &[&str]) -> String {
    let mut out = format!(
        "{} {} ({})\n",
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
        out.push_str(&format!(
            "Added `Include {}` to the top of {}{}\n",
            layout.file.display(),
            layout.user_config.display(),
            outcome
                .backup
                .as_ref()
                .map(|b| format!(" (the old one is {})", b.display()))
                .unwrap_or_default()
        ));
    }
    if let Some(first) = names.first() {
        out.push_str(&format!("Now: ssh {first}\n"));
    }
    out
}

async fn keys_ls(ctx: &mut Ctx) -> Result<(), CliError> {
    let token = ctx.token().await?;
    let keys = ctx
        .client
        .keys(&token)
        .await
        .map_err(|e| from_client("cannot list keys", e))?;
    ctx.show(&keys, |k| render::keys(&k.keys));
    Ok(())
}

async fn keys_add(ctx: &mut Ctx, file: Option<PathBuf>) -> Result<(), CliError> {
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
    let text = std::fs::read_to_string(&file).map_err(CliError::io(format!(
        "cannot read {} (make a key: ssh-keygen -t ed25519)",
        file.display()
    )))?;
    let token = ctx.token().await?;
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
    Ok(())
}

async fn keys_rm(ctx: &mut Ctx, fingerprint: &str) -> Result<(), CliError> {
    let token = ctx.token().await?;
    ctx.client
        .remove_key(&token, fingerprint)
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
