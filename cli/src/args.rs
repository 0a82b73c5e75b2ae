//! The command line, as clap reads it: every command with its `--help`.
//! The create options are not clap's: they are the shared grammar's
//! `key=value` words, read by `vessel_api::grammar` as Slack reads them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_CODES: &str = "Exit codes: 0 ok, 1 a mistake in the command (or not signed in), \
2 refused by the orchestrator, 3 not found, 4 the server or the network.";

#[derive(Debug, Parser)]
#[command(
    name = "vessel",
    version,
    about = "GPU workstations on demand: request, inspect and reach your vessels",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// The orchestrator's URL (default: the one you signed in to).
    #[arg(long, global = true, env = "VESSEL_SERVER")]
    pub server: Option<String>,
    /// Print what is read as JSON, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in: single sign-on in a browser (device code), or a token file.
    Login(Login),
    /// Forget the sign-in on this machine.
    Logout,
    /// Who you are to the orchestrator: subject, unix name, uid, keys.
    Whoami,
    /// Request a vessel: `vessel create gpu=2 queue=3090 [name=…] [image=…] [for=2d]`.
    #[command(
        after_help = "Options are key=value words, the same as Slack's /vessel create:\n  \
        gpu=N queue=Q cpu=N mem=64G image=I name=N for=2d"
    )]
    Create(Create),
    /// Your vessels.
    #[command(visible_alias = "list")]
    Ls(Ls),
    /// One vessel, with its SSH access once it runs.
    Show { name: String },
    /// Log in over SSH with the vessel's pinned host key: `vessel ssh NAME [-- CMD…]`.
    Ssh(Ssh),
    /// Open the vessel in VS Code (Remote-SSH); updates the SSH config first.
    Code(Code),
    /// Reach the vessel's Jupyter through SSH: `vessel jupyter NAME`.
    #[command(long_about = "Reach the vessel's Jupyter through SSH.\n\n\
        Jupyter listens on the vessel's loopback (127.0.0.1) only: its token \
        travels in a plain-HTTP URL, which anyone on the network path could read. \
        This runs `ssh -N -L PORT:127.0.0.1:PORT` with the vessel's pinned host \
        key, waits until the forward is up, prints the URL (http://127.0.0.1:PORT/lab?token=…), \
        opens a browser where there is one, and keeps the forward until Ctrl-C. \
        Plain OpenSSH does the same: `ssh -L 8888:127.0.0.1:8888 NAME` after \
        `vessel config-ssh`.")]
    Jupyter(Jupyter),
    /// Write `~/.ssh/config.d/vessel` (a Host block per running vessel) and
    /// include it from `~/.ssh/config`, so plain `ssh NAME` works.
    #[command(name = "config-ssh")]
    ConfigSsh(ConfigSsh),
    /// Live longer: `vessel extend NAME [24h]`.
    Extend {
        name: String,
        /// How much longer (`90m`, `24h`, `2d`).
        #[arg(default_value = "24h")]
        by: String,
    },
    /// Exempt from idle reclaim for a while (default: the orchestrator's).
    Keep {
        name: String,
        #[arg(value_name = "FOR")]
        for_: Option<String>,
    },
    /// End a vessel (or cancel a request still waiting in line).
    Kill { name: String },
    /// Hibernate: its running processes end; its files (everywhere, not
    /// only the home), name, host key and address are kept, and its GPUs,
    /// cores and memory go back to the line at once.
    Hibernate { name: String },
    /// Wake a hibernated vessel on the host its disk is on (it waits in line
    /// there if that host is full): `vessel wake NAME [--wait]`.
    Wake {
        name: String,
        /// Follow it to ready, as `create --wait` does, then print its SSH access.
        #[arg(long)]
        wait: bool,
        /// If its own host is full, wake it on another (its disk is moved
        /// there; its address changes, so run `vessel config-ssh` after).
        #[arg(long)]
        anywhere: bool,
    },
    /// Your SSH public keys.
    #[command(subcommand)]
    Keys(Keys),
    /// The waiting line of every queue.
    Queue,
    /// The fleet: hosts and GPUs; `fleet queue` per-queue totals; `fleet front VESSEL` (admins).
    Fleet(Fleet),
    /// Take no new vessels on a host (admins).
    Drain { host: String },
    /// Take new vessels on a host again (admins).
    Undrain { host: String },
    /// Link an SSO identity to a person, so it acts as them (admins):
    /// `vessel link U0ALICE sso alice-sub`.
    #[command(
        long_about = "Link an SSO identity to a person, so its tokens act as them (admins).\n\n\
        Until linked, a person who signs in at an OIDC issuer is SUB@NAME (NAME is the \
        issuer's `name` in the orchestrator's config), never the Slack user whose id \
        their `sub` may equal. Linking makes that identity the person USER: their \
        vessels, keys, unix name and role. `vessel link USER` lists USER's links."
    )]
    Link {
        /// The person (a Slack user id, or `SUB@NAME`).
        user: String,
        /// The issuer's `name` in the orchestrator's config.
        #[arg(requires = "subject")]
        issuer: Option<String>,
        /// The identity's `sub` at that issuer.
        subject: Option<String>,
    },
    /// Remove a link `vessel link` made (admins): `vessel unlink USER ISSUER SUBJECT`.
    Unlink {
        user: String,
        issuer: String,
        subject: String,
    },
    /// Shell completions: `vessel completions bash > /etc/bash_completion.d/vessel`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct Login {
    /// Use a token an operator printed (`vessel-orchestrator token …`), or
    /// `-` for standard input, instead of single sign-on.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Do not try to open a browser; just print the address and the code.
    #[arg(long)]
    pub no_browser: bool,
}

#[derive(Debug, Args)]
pub struct Create {
    /// key=value options: gpu=N queue=Q cpu=N mem=64G image=I name=N for=2d.
    #[arg(value_name = "OPTION")]
    pub words: Vec<String>,
    /// Follow it: the place in line, then placed → starting → ready, then
    /// the SSH config. Ctrl-C asks whether to cancel.
    #[arg(long)]
    pub wait: bool,
    /// Do not join the line when nothing fits now: refuse at once (exit 2),
    /// as scripts want.
    #[arg(long, conflicts_with = "wait")]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct Ls {
    /// Include ended vessels.
    #[arg(long)]
    pub ended: bool,
    /// Everyone's (admins).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct Ssh {
    pub name: String,
    /// The private key to log in with (default: the one `keys add` read,
    /// else ~/.ssh/id_ed25519).
    #[arg(short = 'i', long, env = "VESSEL_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// A command to run instead of a login shell.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Code {
    pub name: String,
    #[arg(short = 'i', long, env = "VESSEL_IDENTITY")]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Jupyter {
    pub name: String,
    /// The port on this machine (default: Jupyter's port in the vessel).
    #[arg(long, value_name = "LOCAL", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Do not try to open a browser; just print the URL.
    #[arg(long)]
    pub no_browser: bool,
    #[arg(short = 'i', long, env = "VESSEL_IDENTITY")]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConfigSsh {
    /// Where to keep the vessel blocks (default ~/.ssh/config.d/vessel).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[arg(short = 'i', long, env = "VESSEL_IDENTITY")]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Keys {
    /// Register a public key (default ~/.ssh/id_ed25519.pub).
    Add { file: Option<PathBuf> },
    /// Your registered keys.
    Ls,
    /// Remove a key by its fingerprint (`SHA256:…`).
    Rm { fingerprint: String },
}

#[derive(Debug, Args)]
pub struct Fleet {
    #[command(subcommand)]
    pub view: Option<FleetView>,
}

#[derive(Debug, Subcommand)]
pub enum FleetView {
    /// Per-queue totals: free and used GPUs, cores, memory, waiting.
    Queue,
    /// Move a waiting request to the front of its queue's line (admins).
    Front { vessel: String },
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn create_takes_its_words_and_either_wait_flag() {
        let cli = Cli::try_parse_from(["vessel", "create", "gpu=2", "queue=3090", "--no-wait"])
            .expect("parses");
        let Command::Create(c) = cli.command else {
            panic!("not a create")
        };
        assert_eq!(c.words, ["gpu=2", "queue=3090"]);
        assert!(c.no_wait && !c.wait);
        assert!(Cli::try_parse_from(["vessel", "create", "--wait", "--no-wait"]).is_err());
    }
}
