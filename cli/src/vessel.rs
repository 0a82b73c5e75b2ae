//! A vessel as the CLI holds it: the orchestrator's view, with its SSH
//! access parsed into the contract's types (`SshLogin`). The CLI writes
//! those fields into `~/.ssh`, into file names and onto ssh's command line,
//! so an answer with one field that is not what it must be is refused
//! whole, naming the field; nothing of it is written or run.

use serde::Serialize;
use vessel_api::ssh::SshLogin;
use vessel_api::vessels::VesselView;

use crate::error::CliError;

/// A vessel whose SSH access, if it has one, is parsed.
#[derive(Debug, Clone)]
pub struct Vessel {
    pub view: VesselView,
    /// Present once it runs, and only to its owner.
    pub login: Option<SshLogin>,
}

impl Vessel {
    pub fn parse(view: VesselView) -> Result<Vessel, CliError> {
        let login = match &view.ssh {
            Some(access) => {
                Some(
                    SshLogin::parse(access).map_err(|source| CliError::Untrusted {
                        vessel: view.name.to_string(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Ok(Vessel { view, login })
    }

    /// Every vessel of a list, or the first one refused.
    pub fn parse_all(views: Vec<VesselView>) -> Result<Vec<Vessel>, CliError> {
        views.into_iter().map(Vessel::parse).collect()
    }
}

/// `--json` prints the view as the orchestrator sent it.
impl Serialize for Vessel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view.serialize(s)
    }
}

/// A list as `--json` prints it: `{"vessels": […]}`, as the API sends it.
#[derive(Debug, Serialize)]
pub struct Vessels {
    pub vessels: Vec<Vessel>,
}

impl Vessels {
    pub fn logins(&self) -> Vec<&SshLogin> {
        self.vessels
            .iter()
            .filter_map(|v| v.login.as_ref())
            .collect()
    }
}
