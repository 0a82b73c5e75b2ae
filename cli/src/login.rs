//! `vessel login`: single sign-on by the device grant against the issuer
//! the orchestrator names, or a token an operator printed; either way the
//! token is proved with `GET /v1/me` before it is kept.

use std::path::Path;

use vessel_api::{Client, ErrorCode};

use crate::args::Login;
use crate::ctx::client_for;
use crate::error::{from_client, CliError};
use crate::oidc::{self, Provider};
use crate::session::{Credentials, SsoSession};

/// The quick start's orchestrator.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8700";

/// Signs in to `server` (else the one signed in to before, else the quick
/// start's) and keeps the sign-in.
pub async fn login(server: Option<&str>, login: &Login) -> Result<(), CliError> {
    let previous = Credentials::load().ok().flatten();
    let server = server
        .map(str::to_string)
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

/// `vessel logout`: forgets the sign-in on this machine.
pub fn logout() -> Result<(), CliError> {
    let removed = Credentials::remove()?;
    eprintln!(
        "{}",
        if removed {
            "Signed out on this machine."
        } else {
            "You were not signed in."
        }
    );
    Ok(())
}

fn read_token(file: &Path) -> Result<String, CliError> {
    let text = if file == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(CliError::io("cannot read the token from standard input"))?;
        s
    } else {
        std::fs::read_to_string(file).map_err(CliError::io(format!(
            "cannot read the token file {}",
            file.display()
        )))?
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
pub(crate) fn open_browser(url: &str) {
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
