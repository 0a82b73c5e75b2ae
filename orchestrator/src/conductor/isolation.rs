//! Vessels on one host must not reach each other over the host's vessel
//! network: sshd listens on every interface (Jupyter on the loopback only),
//! and in tailscale mode the tailnet's ACLs are the only gate meant to stand
//! in front of it. The options we create a network with, and the check of
//! one that exists.

use std::collections::HashMap;

use bollard::models::NetworkInspect;

use crate::config::DirectDriver;

/// Docker's bridge option for inter-container traffic on one bridge.
pub const BRIDGE_ICC: &str = "com.docker.network.bridge.enable_icc";
/// macvlan's mode: `private` forwards nothing between the sub-interfaces
/// of one parent, even through a hairpinning switch.
pub const MACVLAN_MODE: &str = "macvlan_mode";

/// The driver options a vessel network is created with.
pub fn create_options(driver: DirectDriver) -> HashMap<String, String> {
    let (key, value) = match driver {
        DirectDriver::Bridge => (BRIDGE_ICC, "false"),
        DirectDriver::Macvlan => (MACVLAN_MODE, "private"),
    };
    HashMap::from([(key.to_string(), value.to_string())])
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IsolationError {
    #[error(
        "the Docker network {network} lets vessels on one host reach each other \
         (a bridge with inter-container traffic on): recreate it with \
         `-o {BRIDGE_ICC}=false`, or remove it and let the orchestrator create it"
    )]
    BridgeIcc { network: String },
    #[error(
        "the Docker network {network} uses driver `{driver}`, which Vessel does not \
         know to isolate vessels; use a bridge with inter-container traffic off \
         (`-o {BRIDGE_ICC}=false`) or macvlan"
    )]
    UnknownDriver { network: String, driver: String },
}

/// A bridge that someone else made (an operator, an older orchestrator)
/// must have inter-container traffic off; Docker cannot change that on an
/// existing network, so it is refused with what to do. A macvlan network's
/// mode is the operator's choice (README, Security). Every other driver
/// (`host`, `ipvlan`, `overlay`, a plugin's) is refused by name: Vessel
/// does not know that it keeps vessels apart, and `host` plainly does not.
pub fn check(network: &str, inspected: &NetworkInspect) -> Result<(), IsolationError> {
    match inspected.driver.as_deref() {
        Some("bridge") => {}
        Some("macvlan") => return Ok(()),
        other => {
            return Err(IsolationError::UnknownDriver {
                network: network.to_string(),
                driver: other.unwrap_or_default().to_string(),
            })
        }
    }
    let icc = inspected
        .options
        .as_ref()
        .and_then(|o| o.get(BRIDGE_ICC))
        .map(String::as_str);
    // Docker's default, when the option is absent, is on.
    if icc == Some("false") {
        Ok(())
    } else {
        Err(IsolationError::BridgeIcc {
            network: network.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(options: &[(&str, &str)]) -> NetworkInspect {
        NetworkInspect {
            driver: Some("bridge".into()),
            options: Some(
                options
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn networks_we_create_keep_vessels_apart() {
        assert_eq!(
            create_options(DirectDriver::Bridge).get(BRIDGE_ICC),
            Some(&"false".to_string())
        );
        assert_eq!(
            create_options(DirectDriver::Macvlan).get(MACVLAN_MODE),
            Some(&"private".to_string())
        );
    }

    #[test]
    fn a_bridge_that_lets_vessels_reach_each_other_is_refused() {
        assert!(check("v", &bridge(&[(BRIDGE_ICC, "false")])).is_ok());
        assert!(check("v", &bridge(&[(BRIDGE_ICC, "true")])).is_err());
        assert!(check("v", &bridge(&[])).is_err(), "absent means on");
        let macvlan = NetworkInspect {
            driver: Some("macvlan".into()),
            ..Default::default()
        };
        assert!(check("v", &macvlan).is_ok());
    }

    #[test]
    fn a_network_whose_driver_is_not_known_to_isolate_vessels_is_refused() {
        for driver in ["ipvlan", "host", "overlay", "null", "weird/plugin", ""] {
            let inspected = NetworkInspect {
                driver: Some(driver.into()),
                // What would pass on a bridge must not pass elsewhere.
                options: Some(HashMap::from([(BRIDGE_ICC.into(), "false".into())])),
                ..Default::default()
            };
            let e = check("vessels", &inspected).unwrap_err();
            assert_eq!(
                e,
                IsolationError::UnknownDriver {
                    network: "vessels".into(),
                    driver: driver.into()
                }
            );
            let said = e.to_string();
            assert!(
                said.contains(&format!("uses driver `{driver}`")) && said.contains("macvlan"),
                "{said}"
            );
        }
        let unnamed = NetworkInspect::default();
        assert!(check("vessels", &unnamed).is_err(), "no driver is no proof");
    }
}
