//! Provisioning and removal of one vessel's container on its host.

use std::sync::Arc;

use bollard::container::AttachContainerResults;
use bollard::errors::Error as DockerError;
use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, InspectNetworkOptions, RemoveContainerOptions,
};
use bollard::Docker;
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, info_span, warn, Instrument};

use super::error::{ProvisionError, RemoveError};
use super::spec::{self, VesselSpec};
use super::{init, isolation, ready, Conductor};
use crate::config::{DirectDriver, HostSpec, NetworkSpec};
use crate::error_chain::chain;
use crate::hosts::{storage, HostError, HostLink};
use crate::sshkeys::HostKey;
use crate::store::vessels::VesselRow;
use crate::store::{hosts as host_store, tailnet_devices, users, vessels};
use crate::tailnet::{MintedKey, TailnetError};

/// The image label that says the image runs Jupyter (on this port).
pub const JUPYTER_LABEL: &str = "org.vessel.jupyter";

fn docker_error(host: &str, what: &str, e: DockerError) -> ProvisionError {
    match e {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } if status_code < 500 => {
            ProvisionError::Permanent(format!("host {host} refused to {what}: {message}"))
        }
        other => ProvisionError::Transient(format!("host {host}: cannot {what}: {other}")),
    }
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// A tailscale-mode vessel's way onto the tailnet.
struct TailnetJoin {
    hostname: String,
    key: MintedKey,
}

impl Conductor {
    /// Makes the vessel's container and waits until its sshd answers. Every
    /// step is idempotent: a retry removes what an earlier attempt left.
    /// Steps that need nothing from each other run together: each is a
    /// round trip to the host or the database, and the user waits for
    /// the longest chain, not the sum.
    pub(crate) async fn provision(&self, v: &VesselRow) -> Result<(), ProvisionError> {
        let (host, spec) = self.placed_on(v)?;
        let link = self
            .connect(host, spec)
            .instrument(info_span!("connect", %host))
            .await?;
        let docker = &link.docker;
        let name = spec::container_name(&v.id.to_string());
        let (image, network, removed, keys) = tokio::join!(
            inspect_image(docker, host, &v.image).instrument(info_span!("inspect_image")),
            self.ensure_network(host, spec, docker)
                .instrument(info_span!("ensure_network")),
            remove_if_present(docker, &name).instrument(info_span!("remove_earlier")),
            self.authorized_keys(v)
                .instrument(info_span!("authorized_keys")),
        );
        // Reported in this order whatever finished first, so a vessel that
        // fails two ways always says the same.
        let jupyter_port = image?;
        network?;
        removed.map_err(|e| docker_error(host, "remove an earlier attempt's container", e))?;
        let keys = keys?;

        let host_key = info_span!("host_key").in_scope(|| {
            HostKey::generate(&format!("vessel-{}", v.name))
                .map_err(|e| ProvisionError::Permanent(format!("cannot make a host key: {e}")))
        })?;
        let join = self
            .mint_tailnet_key(v, host, spec)
            .instrument(info_span!("mint_tailnet_key"))
            .await?;
        let payload = init_payload(v, &keys, &host_key, join.as_ref())?;

        // The row learns the host key while the host makes the container:
        // both are needed before the vessel is ready, neither needs the other.
        let (access, created) = tokio::join!(
            vessels::set_access(&self.db, v.id, &host_key.public_openssh, jupyter_port)
                .instrument(info_span!("set_access")),
            self.create_container(docker, host, spec, v, &name)
                .instrument(info_span!("create_container")),
        );
        created?;
        access?;
        let output = start_with_init(docker, host, &name, payload).await?;
        // Waiting for a tailnet device takes seconds, during which nobody
        // reads the output: a reader that stops reading can stall the
        // container's writes, so that path detaches and readiness polls.
        let mut output = join.is_none().then_some(output);
        let address = match &join {
            Some(join) => {
                self.wait_for_device(v, docker, &name, &join.hostname, &join.key)
                    .instrument(info_span!("wait_for_device"))
                    .await?
            }
            None => v.address.clone().ok_or_else(|| {
                ProvisionError::Permanent("the vessel has no address to reach it on".into())
            })?,
        };
        ready::wait_for_sshd(
            docker,
            &name,
            &address,
            &host_key.public_openssh,
            self.config.conductor.ready_timeout.duration(),
            output.as_mut(),
        )
        .instrument(info_span!("wait_for_sshd", %address))
        .await
    }

    /// The vessel's host and its inventory entry.
    pub(super) fn placed_on<'v>(
        &self,
        v: &'v VesselRow,
    ) -> Result<(&'v str, &HostSpec), ProvisionError> {
        let host = v
            .host_name
            .as_deref()
            .ok_or_else(|| ProvisionError::Permanent("the vessel has no host".into()))?;
        let spec = self.hosts.spec(host).ok_or_else(|| {
            ProvisionError::Permanent(format!("host {host} is no longer in the inventory"))
        })?;
        Ok((host, spec))
    }

    /// The host's connection. A host SSH cannot reach takes no new vessels
    /// until a probe succeeds.
    async fn connect(&self, host: &str, spec: &HostSpec) -> Result<Arc<HostLink>, ProvisionError> {
        match self.hosts.link(host).await {
            Ok(link) => Ok(link),
            Err(e) => {
                self.hosts.forget(host);
                let reason = chain(&e).to_string();
                if let HostError::Ssh { .. } = e {
                    host_store::mark_offline(&self.db, host, &spec.queue, &reason)
                        .await
                        .ok();
                }
                Err(ProvisionError::Transient(reason))
            }
        }
    }

    /// The owner's public keys; a vessel nobody can log in to is not made.
    async fn authorized_keys(&self, v: &VesselRow) -> Result<Vec<String>, ProvisionError> {
        let keys: Vec<String> = users::keys(&self.db, &v.owner_id)
            .await?
            .into_iter()
            .map(|k| k.public_key)
            .collect();
        if keys.is_empty() {
            return Err(ProvisionError::Permanent(
                "no SSH key registered: add one, then create the vessel again".into(),
            ));
        }
        Ok(keys)
    }

    /// Tailscale-mode hosts: a single-use key for this vessel only,
    /// recorded so it is revoked when the vessel ends.
    async fn mint_tailnet_key(
        &self,
        v: &VesselRow,
        host: &str,
        spec: &HostSpec,
    ) -> Result<Option<TailnetJoin>, ProvisionError> {
        if !matches!(spec.network, NetworkSpec::Tailscale { .. }) {
            return Ok(None);
        }
        let tailnet = self.tailnet.as_ref().ok_or_else(|| {
            ProvisionError::Permanent(format!(
                "host {host} joins vessels to a tailnet, but no [tailnet] is configured"
            ))
        })?;
        // A retry's earlier key is revoked first: one live key per vessel.
        self.forget_tailnet(v.id).await;
        let key = tailnet.mint_key(&v.owner_unix).await.map_err(|e| match e {
            TailnetError::Refused(m) => ProvisionError::Permanent(format!("tailnet: {m}")),
            TailnetError::Unavailable(m) => ProvisionError::Transient(format!("tailnet: {m}")),
        })?;
        let hostname = crate::tailnet::Tailnet::hostname(v.id, &v.name, &v.owner_unix);
        tailnet_devices::record_key(&self.db, v.id, &key.id, &hostname).await?;
        Ok(Some(TailnetJoin { hostname, key }))
    }

    async fn create_container(
        &self,
        docker: &Docker,
        host: &str,
        spec: &HostSpec,
        v: &VesselRow,
        name: &str,
    ) -> Result<(), ProvisionError> {
        let id = v.id.to_string();
        let disk_bytes = self.disk_size(host, v).await?;
        let mut vessel = VesselSpec {
            id: &id,
            fleet: &self.config.fleet,
            name: &v.name,
            image: &v.image,
            user: &v.owner_unix,
            cores: &v.cores,
            memory_bytes: v.memory_bytes,
            pids_limit: self.config.conductor.pids_limit,
            gpu_uuids: &v.gpu_uuids,
            address: v.address.as_deref(),
            disk_bytes,
        };
        let options = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        let created = docker
            .create_container(Some(options.clone()), spec::container_body(spec, &vessel))
            .await;
        match created {
            // An overlay2-on-xfs host without project quotas: its vessels
            // are measured instead, this one included.
            Err(e) if disk_bytes.is_some() && storage::refuses_size(&e) => {
                warn!(error = %e, "the engine refuses a container size: measuring instead");
                host_store::distrust_disk_quota(&self.db, host).await?;
                vessel.disk_bytes = None;
                docker
                    .create_container(Some(options), spec::container_body(spec, &vessel))
                    .await
                    .map_err(|e| docker_error(host, "create the container", e))?;
            }
            other => {
                other.map_err(|e| docker_error(host, "create the container", e))?;
            }
        }
        Ok(())
    }

    /// The writable layer's size for a vessel of a queue with a `disk`
    /// limit on a host whose engine honours one.
    async fn disk_size(&self, host: &str, v: &VesselRow) -> Result<Option<u64>, ProvisionError> {
        let Some(limit) = self
            .config
            .queues
            .get(v.queue.as_str())
            .and_then(|q| q.disk)
        else {
            return Ok(None);
        };
        Ok(host_store::disk_quota(&self.db, host)
            .await?
            .then_some(limit.bytes()))
    }

    /// Polls the tailnet's device list until the device `key` became
    /// appears (see `Tailnet::find_device` for what makes it ours); records
    /// it, and its address (and MagicDNS name) on the vessel.
    async fn wait_for_device(
        &self,
        v: &VesselRow,
        docker: &Docker,
        container: &str,
        hostname: &str,
        key: &MintedKey,
    ) -> Result<String, ProvisionError> {
        let tailnet = self.tailnet.as_ref().expect("checked before minting");
        let deadline = std::time::Instant::now() + tailnet.device_timeout();
        loop {
            match tailnet.find_device(hostname, key).await {
                Ok(Some(device)) => {
                    tailnet_devices::set_device(&self.db, v.id, &device.id).await?;
                    let dns = tailnet.dns_name(&device);
                    vessels::set_tailnet_address(&self.db, v.id, &device.address, dns.as_deref())
                        .await?;
                    info!(device = %device.id, address = %device.address, "joined the tailnet");
                    return Ok(device.address);
                }
                Ok(None) => {}
                Err(TailnetError::Refused(m)) => {
                    return Err(ProvisionError::Permanent(format!("tailnet: {m}")))
                }
                Err(TailnetError::Unavailable(m)) => debug!(reason = %m, "device list unavailable"),
            }
            ready::ensure_running(docker, container).await?;
            if std::time::Instant::now() >= deadline {
                return Err(ProvisionError::Permanent(format!(
                    "the vessel did not appear on the tailnet as {hostname} within {}s",
                    tailnet.device_timeout().as_secs()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// Removes the vessel's tailnet device and revokes its key, if any: at
    /// kill, burial and failure alike, so nothing lingers until expiry.
    pub(crate) async fn forget_tailnet(&self, id: uuid::Uuid) {
        let Some(tailnet) = self.tailnet.as_ref() else {
            return;
        };
        let Ok(Some(row)) = tailnet_devices::live(&self.db, id).await else {
            return;
        };
        let mut clean = true;
        if let Some(device) = &row.device_id {
            if let Err(e) = tailnet.delete_device(device).await {
                warn!(error = %e, "cannot delete the tailnet device");
                clean = false;
            }
        }
        if let Some(key) = &row.key_id {
            if let Err(e) = tailnet.delete_key(key).await {
                warn!(error = %e, "cannot delete the tailnet key");
                clean = false;
            }
        }
        if clean {
            if let Err(e) = tailnet_devices::mark_removed(&self.db, id).await {
                warn!(error = %e, "cannot record the tailnet device's removal");
            }
        }
    }

    /// Creates the host's vessel network if it is missing. Another worker
    /// creating it at the same moment is fine.
    pub(super) async fn ensure_network(
        &self,
        host: &str,
        spec: &HostSpec,
        docker: &Docker,
    ) -> Result<(), ProvisionError> {
        if self.networks_ready.lock().expect("poisoned").contains(host) {
            return Ok(());
        }
        let (docker_network, driver, parent, subnet, gateway) = match &spec.network {
            NetworkSpec::Direct {
                docker_network,
                driver,
                parent,
                subnet,
                gateway,
                ..
            } => (docker_network, *driver, parent.clone(), *subnet, *gateway),
            NetworkSpec::Tailscale {
                docker_network,
                subnet,
            } => (docker_network, DirectDriver::Bridge, None, *subnet, None),
        };
        match docker
            .inspect_network(docker_network, None::<InspectNetworkOptions>)
            .await
        {
            Ok(existing) => isolation::check(docker_network, &existing)
                .map_err(|e| ProvisionError::Permanent(format!("host {host}: {e}")))?,
            Err(e) if is_not_found(&e) => {
                let mut options = isolation::create_options(driver);
                if let Some(parent) = parent {
                    options.insert("parent".to_string(), parent);
                }
                let request = NetworkCreateRequest {
                    name: docker_network.clone(),
                    driver: Some(match driver {
                        DirectDriver::Bridge => "bridge".into(),
                        DirectDriver::Macvlan => "macvlan".into(),
                    }),
                    options: Some(options),
                    ipam: Some(Ipam {
                        config: Some(vec![IpamConfig {
                            subnet: Some(subnet.to_string()),
                            gateway: gateway.map(|g| g.to_string()),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                    labels: Some(std::collections::HashMap::from([(
                        spec::LABEL_FLEET.to_string(),
                        self.config.fleet.clone(),
                    )])),
                    ..Default::default()
                };
                match docker.create_network(request).await {
                    Ok(_) => info!(network = %docker_network, "created the vessel network"),
                    Err(DockerError::DockerResponseServerError {
                        status_code: 409, ..
                    }) => {}
                    Err(e) => return Err(docker_error(host, "create the vessel network", e)),
                }
            }
            Err(e) => return Err(docker_error(host, "inspect the vessel network", e)),
        }
        self.networks_ready
            .lock()
            .expect("poisoned")
            .insert(host.to_string());
        Ok(())
    }

    /// Removes the vessel's container; a container that is already gone is
    /// success.
    pub(crate) async fn remove_container(&self, v: &VesselRow) -> Result<(), RemoveError> {
        let Some(host) = v.host_name.as_deref() else {
            return Ok(());
        };
        let removed = self.remove_container_only(v, host).await;
        if removed.is_ok() {
            self.forget_tailnet(v.id).await;
        }
        removed
    }

    async fn remove_container_only(&self, v: &VesselRow, host: &str) -> Result<(), RemoveError> {
        let link = self.hosts.link(host).await.inspect_err(|_| {
            self.hosts.forget(host);
        })?;
        remove_if_present(&link.docker, &spec::container_name(&v.id.to_string()))
            .await
            .map_err(|source| RemoveError::Docker {
                host: host.to_string(),
                source,
            })?;
        // A vessel woken on other GPUs ran from a commit of its disk: that
        // image goes with it (absent for every other vessel).
        let image = super::sleep::disk_image(v.id);
        if let Err(e) = link
            .docker
            .remove_image(
                &image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
        {
            if !is_not_found(&e) {
                warn!(%image, error = %chain(&e), "cannot remove the vessel's disk image");
            }
        }
        Ok(())
    }
}

async fn remove_if_present(docker: &Docker, name: &str) -> Result<(), DockerError> {
    match docker
        .remove_container(
            name,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        // Docker answers 409 while a removal of the same container is running.
        Err(DockerError::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the image is on the host, and the Jupyter port its label names.
async fn inspect_image(
    docker: &Docker,
    host: &str,
    image: &str,
) -> Result<Option<i32>, ProvisionError> {
    let inspected = docker.inspect_image(image).await.map_err(|e| {
        if is_not_found(&e) {
            ProvisionError::Permanent(format!(
                "image {image} is not on host {host} and no registry is set"
            ))
        } else {
            docker_error(host, "inspect the image", e)
        }
    })?;
    let jupyter_port: Option<i32> = inspected
        .config
        .and_then(|c| c.labels)
        .and_then(|l| l.get(JUPYTER_LABEL).map(|p| p.parse().unwrap_or(8888)));
    debug!(?jupyter_port, "image present");
    Ok(jupyter_port)
}

/// What the container's init reads on stdin: user, keys, host key, tailnet.
fn init_payload(
    v: &VesselRow,
    keys: &[String],
    host_key: &HostKey,
    join: Option<&TailnetJoin>,
) -> Result<Vec<u8>, ProvisionError> {
    let gpus = if v.gpu_uuids.is_empty() {
        "none".to_string()
    } else {
        v.gpu_uuids.join(",")
    };
    init::payload(&init::InitInputs {
        vessel_name: &v.name,
        user: &v.owner_unix,
        uid: v.owner_uid,
        gpus: &gpus,
        authorized_keys: keys,
        host_private_key: &host_key.private_openssh,
        host_public_key: &host_key.public_openssh,
        jupyter_token: v.jupyter_token.as_deref().unwrap_or_default(),
        tailscale: join.map(|j| (j.hostname.as_str(), j.key.secret.expose())),
    })
    .map_err(|e| ProvisionError::Permanent(format!("cannot pack the init: {e}")))
}

/// Attaches to the container, then starts it and sends the init to its
/// stdin at once (the init waits for it); stdin closes after. Returns the
/// container's output from its first line: readiness listens to it.
async fn start_with_init(
    docker: &Docker,
    host: &str,
    name: &str,
    payload: Vec<u8>,
) -> Result<ready::Output, ProvisionError> {
    let options = AttachContainerOptions {
        stdin: true,
        stdout: true,
        stderr: true,
        stream: true,
        ..Default::default()
    };
    let AttachContainerResults { output, mut input } = docker
        .attach_container(name, Some(options))
        .instrument(info_span!("attach"))
        .await
        .map_err(|e| docker_error(host, "attach to the container", e))?;
    let send = async {
        input.write_all(&payload).await?;
        // End of stdin: the container's stdin closes (StdinOnce).
        input.shutdown().await
    }
    .instrument(info_span!("send_init"));
    let start = docker
        .start_container(name, None)
        .instrument(info_span!("start_container"));
    let (sent, started) = tokio::join!(send, start);
    started.map_err(|e| docker_error(host, "start the container", e))?;
    sent.map_err(|e| ProvisionError::Transient(format!("host {host}: cannot send the init: {e}")))?;
    Ok(output)
}
