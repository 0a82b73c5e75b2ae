//! `GET /v1/auth/config`: where the CLI signs people in. Public (a client
//! must learn where to get a token before it has one); it names only what
//! the identity provider publishes anyway: its issuer URL and a public
//! client id.

use axum::extract::State;
use axum::Json;
use vessel_api::signin::SignInConfig;

use super::error::ApiError;
use super::AppState;

pub async fn config(State(state): State<AppState>) -> Result<Json<SignInConfig>, ApiError> {
    let cli = state.config.cli.as_ref().ok_or_else(|| {
        ApiError::NotFound(
            "this orchestrator has no single sign-on for the CLI ([cli] is not configured); \
             ask an operator for a token and use `vessel login --token-file`"
                .into(),
        )
    })?;
    // Validated at start-up: `cli.issuer` is one of the OIDC issuers.
    let audience = state
        .config
        .auth
        .oidc
        .iter()
        .find(|o| o.issuer == cli.issuer)
        .map(|o| o.audience.clone())
        .ok_or_else(|| ApiError::bug("cli.issuer is not an auth.oidc issuer"))?;
    Ok(Json(SignInConfig {
        issuer: cli.issuer.clone(),
        client_id: cli.client_id.clone(),
        scope: cli.scopes.join(" "),
        audience,
    }))
}
