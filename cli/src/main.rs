//! The `vessel` binary: parse the command line, run it, turn the outcome
//! into a message on stderr and an exit code (see `vessel --help`).

use clap::Parser;
use vessel_cli::args::Cli;
use vessel_cli::error::{chain, CliError, Exit};

fn main() {
    // Rust ignores SIGPIPE, which turns a closed pipe into a panic in
    // `println!`; a command-line tool should just stop.
    // SAFETY: called first, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { Exit::User } else { Exit::Ok };
            let _ = e.print();
            std::process::exit(code as i32);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vessel: cannot start: {e}");
            std::process::exit(Exit::Server as i32);
        }
    };
    let outcome = runtime.block_on(vessel_cli::commands::run(cli));
    match outcome {
        Ok(()) => std::process::exit(Exit::Ok as i32),
        Err(e) => {
            eprintln!("vessel: {}", chain(&e));
            if let CliError::Usage {
                usage: Some(usage), ..
            } = &e
            {
                eprintln!("usage: {usage}");
            }
            std::process::exit(e.exit() as i32);
        }
    }
}
