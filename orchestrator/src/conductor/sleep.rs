//! Hibernation's steps on a host: stop a vessel's container and keep it
//! (its disk), and start it again at a wake, on the host its disk is on,
//! proving the same host key as before. Neither step ever removes the
//! container: it is the vessel's disk.
//!
//! A wake whose vessel got its old GPUs back starts the container as it is
//! (cores and memory updated in place); one whose GPUs were taken while it
//! slept is recreated from a commit of its disk, since Docker cannot change
//! a stopped container's devices or environment (an update naming them
//! answers 200 and changes nothing).

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerConfig, ContainerUpdateBody};
use bollard::query_parameters::{
    CommitContainerOptions, RemoveContainerOptions, RenameContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use tracing::{info, warn};

use super::error::ProvisionError;
use super::spec::{self, VesselSpec};
use super::{ready, Conductor, Outcome};
use crate::domain::VesselState;
use crate::error_chain::chain;
use crate::store::vessels::{self, VesselRow};

/// How long a hibernating vessel's processes get to end after SIGTERM.
const STOP_GRACE_SECS: i32 = 2;

/// The image a vessel's disk is committed to when it wakes on other GPUs.
pub(super) fn disk_image(id: uuid::Uuid) -> String {
    format!("vessel-disk/{id}:latest")
}

/// The GPUs a container was made with, from its environment.
fn container_gpus(env: &[String]) -> Vec<String> {
    env.iter()
        .find_map(|e| e.strip_prefix("NVIDIA_VISIBLE_DEVICES="))
        .filter(|v| *v != "none" && !v.is_empty())
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

fn is_status(e: &DockerError, code: u16) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code, .. } if *status_code == code)
}

impl Conductor {
    /// `hibernating` → `hibernated`: the container is stopped (304: it was
    /// already), then in one transaction the reservation goes, the address
    /// is held, and the state moves. A container that vanished leaves the
    /// vessel `lost`, its resources freed.
    pub(super) async fn put_to_sleep(
        &self,
        v: &VesselRow,
        attempts: i32,
    ) -> Result<Outcome, sqlx::Error> {
        let host = v.host_name.as_deref().unwrap_or_default();
        let stopped = match self.hosts.link(host).await {
            Ok(link) => {
                let name = spec::container_name(&v.id.to_string());
                let options = StopContainerOptions {
                    t: Some(STOP_GRACE_SECS),
                    signal: None,
                };
                match link.docker.stop_container(&name, Some(options)).await {
                    Ok(()) => Ok(true),
                    Err(e) if is_status(&e, 304) => Ok(true),
                    Err(e) if is_status(&e, 404) => Ok(false),
                    Err(e) => Err(chain(&e).to_string()),
                }
            }
            Err(e) => {
                self.hosts.forget(host);
                Err(chain(&e).to_string())
            }
        };
        let mut tx = self.db.begin().await?;
        match stopped {
            Ok(true) => {
                if vessels::put_to_sleep(&mut tx, v.id).await? {
                    vessels::transition(
                        &mut tx,
                        v.id,
                        &[VesselState::Hibernating],
                        VesselState::Hibernated,
                        None,
                    )
                    .await?;
                    info!("hibernated");
                }
            }
            Ok(false) => {
                vessels::free_reservation(&mut tx, v.id).await?;
                vessels::transition(
                    &mut tx,
                    v.id,
                    &[VesselState::Hibernating],
                    VesselState::Lost,
                    Some("its container vanished before it could hibernate"),
                )
                .await?;
            }
            Err(why) => {
                tx.rollback().await?;
                return Ok(Outcome::RetryAfter(
                    self.backoff(attempts),
                    format!("cannot stop the container yet: {why}"),
                ));
            }
        }
        tx.commit().await?;
        Ok(Outcome::Done)
    }

    /// A placed wake (`provisioning` with its disk on a host) → `running`,
    /// or back to `hibernated` with the reason when it cannot start.
    pub(super) async fn wake_up(
        &self,
        v: &VesselRow,
        attempts: i32,
    ) -> Result<Option<Outcome>, sqlx::Error> {
        let started = std::time::Instant::now();
        match self.start_again(v).await {
            Ok(()) => {
                let mut tx = self.db.begin().await?;
                let moved = vessels::transition(
                    &mut tx,
                    v.id,
                    &[VesselState::Provisioning],
                    VesselState::Running,
                    None,
                )
                .await?;
                if moved.is_none() {
                    tx.rollback().await?;
                    return Ok(None);
                }
                let slept = vessels::woke(&mut tx, v.id).await?;
                crate::store::idle::reset(&mut tx, v.id).await?;
                tx.commit().await?;
                let moved = v.disk_host.is_some() && v.disk_host != v.host_name;
                crate::metrics::woke(started.elapsed(), moved);
                if let Some(secs) = slept {
                    crate::metrics::slept(
                        v.gpus,
                        std::time::Duration::from_secs_f64(secs.max(0.0)),
                    );
                }
                info!(elapsed_ms = started.elapsed().as_millis() as u64, "awake");
                Ok(Some(Outcome::Done))
            }
            Err(ProvisionError::Transient(why))
                if attempts < self.config.conductor.max_attempts =>
            {
                self.stop_quietly(v).await;
                Ok(Some(Outcome::RetryAfter(self.backoff(attempts), why)))
            }
            Err(e) => self.back_to_sleep(v, &e.to_string()).await,
        }
    }

    /// The container runs again with the vessel's new cores, memory and
    /// GPUs, and its sshd proves the host key it had.
    async fn start_again(&self, v: &VesselRow) -> Result<(), ProvisionError> {
        let (host, spec) = self.placed_on(v)?;
        if let Some(from) = v.disk_host.as_deref().filter(|d| *d != host) {
            return self.move_disk(v, from, host, spec).await;
        }
        let link = self.hosts.link(host).await.map_err(|e| {
            self.hosts.forget(host);
            ProvisionError::Transient(chain(&e).to_string())
        })?;
        let docker = &link.docker;
        let name = spec::container_name(&v.id.to_string());
        let info = docker
            .inspect_container(&name, None)
            .await
            .map_err(|e| match e {
                e if is_status(&e, 404) => {
                    ProvisionError::Permanent(format!("its disk (container {name}) is gone"))
                }
                e => ProvisionError::Transient(chain(&e).to_string()),
            })?;
        let env = info.config.and_then(|c| c.env).unwrap_or_default();
        let running_as = if container_gpus(&env) == v.gpu_uuids {
            self.in_place(docker, &name, v).await?;
            name.clone()
        } else {
            self.recreate_from_commit(docker, spec, &name, v).await?
        };
        let address = v.address.clone().ok_or_else(|| {
            ProvisionError::Permanent("the vessel has no address to reach it on".into())
        })?;
        let host_key = v.host_public_key.clone().ok_or_else(|| {
            ProvisionError::Permanent("the vessel has no host key to prove".into())
        })?;
        ready::wait_for_sshd(
            docker,
            &running_as,
            &address,
            &host_key,
            self.config.conductor.ready_timeout.duration(),
            None,
        )
        .await?;
        if running_as != name {
            self.swap_in(docker, &name, &running_as).await?;
        }
        Ok(())
    }

    /// Same GPUs: the stopped container gets its new cores and memory and
    /// starts; its init finds its files and runs sshd again.
    async fn in_place(
        &self,
        docker: &Docker,
        name: &str,
        v: &VesselRow,
    ) -> Result<(), ProvisionError> {
        let cpuset = v
            .cores
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let update = ContainerUpdateBody {
            cpuset_cpus: Some(cpuset),
            memory: Some(v.memory_bytes),
            memory_swap: Some(v.memory_bytes),
            pids_limit: Some(self.config.conductor.pids_limit),
            ..Default::default()
        };
        docker.update_container(name, update).await.map_err(|e| {
            ProvisionError::Transient(format!("cannot update {name}: {}", chain(&e)))
        })?;
        match docker.start_container(name, None).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 304) => Ok(()),
            Err(e) => Err(ProvisionError::Transient(format!(
                "cannot start {name}: {}",
                chain(&e)
            ))),
        }
    }

    /// Other GPUs: its disk is committed to an image and a new container is
    /// made from it beside the old one (`…-woken`), with the same address
    /// and host key files; the old one goes only once the new one is ready.
    async fn recreate_from_commit(
        &self,
        docker: &Docker,
        spec: &crate::config::HostSpec,
        name: &str,
        v: &VesselRow,
    ) -> Result<String, ProvisionError> {
        let woken = format!("{name}-woken");
        remove_quietly(docker, &woken).await;
        let image = commit_disk(docker, name, v.id).await?;
        // A stopped container does not hold its address: the new one takes it.
        self.create_from(docker, spec, v, &image, &woken).await?;
        info!(
            image,
            "recreated from a commit of its disk: its GPUs were taken while it slept"
        );
        Ok(woken)
    }

    /// `wake --anywhere` on a host that is not its disk's: the disk is
    /// committed on the old host, streamed to the new one over the
    /// orchestrator's two SSH connections, and started there (`…-moved`);
    /// the old container goes only once the new one proves its host key.
    async fn move_disk(
        &self,
        v: &VesselRow,
        from: &str,
        to: &str,
        spec: &crate::config::HostSpec,
    ) -> Result<(), ProvisionError> {
        let (old, new) = (self.link_to(from).await?, self.link_to(to).await?);
        let name = spec::container_name(&v.id.to_string());
        let image = commit_disk(&old.docker, &name, v.id).await?;
        let started = std::time::Instant::now();
        let bytes = copy_image(&old.docker, &new.docker, &image).await?;
        info!(
            bytes,
            ms = started.elapsed().as_millis() as u64,
            from,
            to,
            "disk streamed"
        );
        self.ensure_network(to, spec, &new.docker).await?;
        let moved = format!("{name}-moved");
        remove_quietly(&new.docker, &moved).await;
        self.create_from(&new.docker, spec, v, &image, &moved)
            .await?;
        let address = v.address.clone().ok_or_else(|| {
            ProvisionError::Permanent("the vessel has no address on its new host".into())
        })?;
        let host_key = v.host_public_key.clone().ok_or_else(|| {
            ProvisionError::Permanent("the vessel has no host key to prove".into())
        })?;
        ready::wait_for_sshd(
            &new.docker,
            &moved,
            &address,
            &host_key,
            self.config.conductor.ready_timeout.duration(),
            None,
        )
        .await?;
        remove_quietly(&old.docker, &name).await;
        let none = None::<bollard::query_parameters::RemoveImageOptions>;
        if let Err(e) = old.docker.remove_image(&image, none, None).await {
            // Still used (the rig's hosts share one engine), or gone.
            tracing::debug!(error = %chain(&e), "the old host keeps the disk image");
        }
        self.swap_in(&new.docker, &name, &moved).await
    }

    async fn link_to(
        &self,
        host: &str,
    ) -> Result<std::sync::Arc<crate::hosts::HostLink>, ProvisionError> {
        self.hosts.link(host).await.map_err(|e| {
            self.hosts.forget(host);
            ProvisionError::Transient(chain(&e).to_string())
        })
    }

    /// A container named `name` from `image`, as the vessel is now (its
    /// cores, memory, GPUs and address), started.
    async fn create_from(
        &self,
        docker: &Docker,
        spec: &crate::config::HostSpec,
        v: &VesselRow,
        image: &str,
        name: &str,
    ) -> Result<(), ProvisionError> {
        let id = v.id.to_string();
        let body = spec::container_body(
            spec,
            &VesselSpec {
                id: &id,
                fleet: &self.config.fleet,
                name: &v.name,
                image,
                user: &v.owner_unix,
                cores: &v.cores,
                memory_bytes: v.memory_bytes,
                pids_limit: self.config.conductor.pids_limit,
                gpu_uuids: &v.gpu_uuids,
                address: v.address.as_deref(),
                disk_bytes: None,
            },
        );
        let options = bollard::query_parameters::CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        let failed = |what: &str, e: DockerError| {
            ProvisionError::Transient(format!("cannot {what} {name}: {}", chain(&e)))
        };
        docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| failed("create", e))?;
        docker
            .start_container(name, None)
            .await
            .map_err(|e| failed("start", e))
    }

    /// The new container takes the vessel's name; the old one goes.
    async fn swap_in(
        &self,
        docker: &Docker,
        name: &str,
        woken: &str,
    ) -> Result<(), ProvisionError> {
        remove_quietly(docker, name).await;
        docker
            .rename_container(
                woken,
                RenameContainerOptions {
                    name: name.to_string(),
                },
            )
            .await
            .map_err(|e| ProvisionError::Transient(format!("cannot rename {woken}: {}", chain(&e))))
    }

    /// A wake attempt that failed: the container is stopped again, so
    /// nothing runs without a reservation.
    async fn stop_quietly(&self, v: &VesselRow) {
        let Some(host) = v.host_name.as_deref() else {
            return;
        };
        if let Ok(link) = self.hosts.link(host).await {
            let name = spec::container_name(&v.id.to_string());
            remove_quietly(&link.docker, &format!("{name}-woken")).await;
            remove_quietly(&link.docker, &format!("{name}-moved")).await;
            let options = StopContainerOptions {
                t: Some(STOP_GRACE_SECS),
                signal: None,
            };
            if let Err(e) = link.docker.stop_container(&name, Some(options)).await {
                if !is_status(&e, 304) && !is_status(&e, 404) {
                    warn!(error = %chain(&e), "cannot stop a failed wake's container");
                }
            }
        }
    }

    /// Gives up on a wake: it sleeps again, saying why.
    async fn back_to_sleep(
        &self,
        v: &VesselRow,
        why: &str,
    ) -> Result<Option<Outcome>, sqlx::Error> {
        warn!(reason = %why, "the wake failed: back to sleep");
        self.stop_quietly(v).await;
        let mut tx = self.db.begin().await?;
        vessels::back_to_sleep(&mut tx, v.id).await?;
        let moved = vessels::transition(
            &mut tx,
            v.id,
            &[VesselState::Provisioning],
            VesselState::Hibernated,
            Some(&format!("could not wake: {why}")),
        )
        .await?;
        if moved.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(Outcome::Done))
    }
}

/// Commits the vessel's container (its disk) to its disk image; the image.
async fn commit_disk(
    docker: &Docker,
    name: &str,
    id: uuid::Uuid,
) -> Result<String, ProvisionError> {
    let image = disk_image(id);
    let (repo, tag) = image.rsplit_once(':').unwrap_or((&image, "latest"));
    let commit = CommitContainerOptions {
        container: Some(name.to_string()),
        repo: Some(repo.to_string()),
        tag: Some(tag.to_string()),
        pause: false,
        ..Default::default()
    };
    docker
        .commit_container(commit, ContainerConfig::default())
        .await
        .map_err(|e| ProvisionError::Transient(format!("cannot commit {name}: {}", chain(&e))))?;
    Ok(image)
}

/// Streams `image` from one host's engine into another's (`docker save |
/// docker load`, each over its host's SSH connection), a few chunks in
/// flight at a time; the bytes sent.
async fn copy_image(from: &Docker, to: &Docker, image: &str) -> Result<u64, ProvisionError> {
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let source = from.clone();
    let name = image.to_string();
    let pump = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut chunks = std::pin::pin!(source.export_image(&name));
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            let failed = chunk.is_err();
            sent += chunk.as_ref().map_or(0, |b| b.len() as u64);
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
        sent
    });
    let body =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let options = bollard::query_parameters::ImportImageOptions {
        quiet: true,
        ..Default::default()
    };
    let mut load = std::pin::pin!(to.import_image_stream(options, body, None));
    while let Some(step) = load.next().await {
        let step = step.map_err(|e| {
            ProvisionError::Transient(format!("cannot load {image}: {}", chain(&e)))
        })?;
        if let Some(e) = step.error_detail.and_then(|d| d.message) {
            return Err(ProvisionError::Transient(format!(
                "cannot load {image}: {e}"
            )));
        }
    }
    pump.await
        .map_err(|e| ProvisionError::Transient(format!("the stream of {image} stopped: {e}")))
}

async fn remove_quietly(docker: &Docker, name: &str) {
    let options = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    if let Err(e) = docker.remove_container(name, Some(options)).await {
        if !is_status(&e, 404) {
            warn!(container = name, error = %chain(&e), "cannot remove");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_containers_gpus_are_read_from_its_environment() {
        let env = |v: &str| {
            vec![
                "PATH=/bin".to_string(),
                format!("NVIDIA_VISIBLE_DEVICES={v}"),
            ]
        };
        assert_eq!(container_gpus(&env("GPU-a,GPU-b")), ["GPU-a", "GPU-b"]);
        assert!(container_gpus(&env("none")).is_empty());
        assert!(container_gpus(&["PATH=/bin".to_string()]).is_empty());
    }
}
