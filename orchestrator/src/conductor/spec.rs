//! The container a vessel is: exactly its CPUs, memory (no swap beyond it),
//! PIDs and GPUs; no privileges, no Docker socket, no host namespaces.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, EndpointIpamConfig, EndpointSettings, HostConfig,
    HostConfigLogConfig, NetworkingConfig,
};

use crate::config::{GpuRuntime, HostSpec, NetworkSpec};

/// Labels that mark a container as ours: the reconciler lists by them.
pub const LABEL_ID: &str = "vessel.id";
pub const LABEL_FLEET: &str = "vessel.fleet";
pub const LABEL_HOST: &str = "vessel.host";
pub const LABEL_OWNER: &str = "vessel.owner";

/// What sshd needs to switch to the user and chroot its privilege-separated
/// child, and what the init needs to create the user and own their home.
/// Everything else Docker grants by default (MKNOD, NET_RAW, SETFCAP, …) is
/// dropped.
pub const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "SETUID",
    "SETGID",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
    "NET_BIND_SERVICE",
];

pub struct VesselSpec<'a> {
    pub id: &'a str,
    pub fleet: &'a str,
    pub name: &'a str,
    pub image: &'a str,
    pub user: &'a str,
    pub cores: &'a [i32],
    pub memory_bytes: i64,
    pub pids_limit: i64,
    pub gpu_uuids: &'a [String],
    pub address: Option<&'a str>,
    /// The writable layer's size, where the host's storage driver honours
    /// one (the survey says); elsewhere the undertaker measures it.
    pub disk_bytes: Option<u64>,
}

pub fn container_name(id: &str) -> String {
    format!("vessel-{id}")
}

pub fn container_body(host: &HostSpec, v: &VesselSpec<'_>) -> ContainerCreateBody {
    let cpuset = v
        .cores
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let visible = if v.gpu_uuids.is_empty() {
        "none".to_string()
    } else {
        v.gpu_uuids.join(",")
    };
    let device_requests = device_requests(host, v);
    let home = host.home_root.join(v.user);
    let network_name = host.network.docker_network().to_string();
    let endpoint = endpoint(host, v);
    let labels = HashMap::from([
        (LABEL_ID.to_string(), v.id.to_string()),
        (LABEL_FLEET.to_string(), v.fleet.to_string()),
        (LABEL_HOST.to_string(), host.name.clone()),
        (LABEL_OWNER.to_string(), v.user.to_string()),
    ]);
    ContainerCreateBody {
        image: Some(v.image.to_string()),
        hostname: Some(v.name.to_string()),
        entrypoint: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            super::init::BOOTSTRAP.into(),
        ]),
        cmd: Some(vec![]),
        // The init arrives on stdin as the container starts; stdin closes
        // once it is sent, so nothing else can write there.
        open_stdin: Some(true),
        stdin_once: Some(true),
        user: Some("0".into()),
        env: Some(vec![format!("NVIDIA_VISIBLE_DEVICES={visible}")]),
        labels: Some(labels),
        host_config: Some(HostConfig {
            cpuset_cpus: Some(cpuset),
            memory: Some(v.memory_bytes),
            // Equal to memory: no swap beyond the reservation.
            memory_swap: Some(v.memory_bytes),
            pids_limit: Some(v.pids_limit),
            device_requests,
            binds: Some(vec![format!("{}:/home/{}", home.display(), v.user)]),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(CAPABILITIES.iter().map(|c| c.to_string()).collect()),
            security_opt: Some(vec!["no-new-privileges".into()]),
            privileged: Some(false),
            network_mode: Some(network_name.clone()),
            // A real init reaps what sshd and Jupyter leave behind.
            init: Some(true),
            log_config: Some(log_config()),
            storage_opt: v
                .disk_bytes
                .map(|b| HashMap::from([("size".to_string(), b.to_string())])),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network_name, endpoint)])),
        }),
        ..Default::default()
    }
}

/// The most of a vessel's output its host keeps: `LOG_FILES` files of
/// `LOG_FILE_SIZE`, rotated, whatever the engine's defaults (Docker's own
/// keep everything). A process printing without end cannot fill
/// `/var/lib/docker` for every vessel on the host; the last lines, which a
/// failed start reports, are always there.
pub const LOG_FILE_SIZE: &str = "5m";
pub const LOG_FILES: &str = "2";

/// Docker's json-file logger with the size cap.
fn log_config() -> HostConfigLogConfig {
    HostConfigLogConfig {
        typ: Some("json-file".into()),
        config: Some(HashMap::from([
            ("max-size".to_string(), LOG_FILE_SIZE.to_string()),
            ("max-file".to_string(), LOG_FILES.to_string()),
        ])),
    }
}

/// The GPUs, through the host's runtime: none for a CPU vessel.
fn device_requests(host: &HostSpec, v: &VesselSpec<'_>) -> Option<Vec<DeviceRequest>> {
    match (host.gpu_runtime, v.gpu_uuids.is_empty()) {
        (_, true) | (GpuRuntime::None, _) => None,
        (GpuRuntime::Nvidia, false) => Some(vec![DeviceRequest {
            driver: Some("nvidia".into()),
            device_ids: Some(v.gpu_uuids.to_vec()),
            capabilities: Some(vec![vec!["gpu".into()]]),
            ..Default::default()
        }]),
        (GpuRuntime::Cdi, false) => Some(vec![DeviceRequest {
            driver: Some("cdi".into()),
            device_ids: Some(
                v.gpu_uuids
                    .iter()
                    .map(|u| format!("nvidia.com/gpu={u}"))
                    .collect(),
            ),
            ..Default::default()
        }]),
    }
}

/// The vessel's place on the host's network: its reserved address on a
/// direct network; on a tailnet, whatever Docker gives.
fn endpoint(host: &HostSpec, v: &VesselSpec<'_>) -> EndpointSettings {
    match &host.network {
        NetworkSpec::Direct { .. } => EndpointSettings {
            ipam_config: v.address.map(|a| EndpointIpamConfig {
                ipv4_address: Some(a.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        NetworkSpec::Tailscale { .. } => EndpointSettings::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DirectDriver, SshSpec};

    fn host(runtime: GpuRuntime) -> HostSpec {
        HostSpec {
            name: "gpu-1".into(),
            queue: crate::domain::QueueName::parse("3090").unwrap(),
            ssh: SshSpec {
                address: "127.0.0.1:22".into(),
                user: "root".into(),
                key_path: "/k".into(),
                host_key: "ssh-ed25519 AAAA".into(),
            },
            home_root: "/srv/homes".into(),
            gpu_runtime: runtime,
            docker_socket: "/var/run/docker.sock".into(),
            network: NetworkSpec::Direct {
                docker_network: "vessels".into(),
                driver: DirectDriver::Bridge,
                parent: None,
                subnet: "10.9.0.0/24".parse().unwrap(),
                gateway: None,
                pool: None,
            },
            reserved_memory: crate::units::ByteSize(1),
        }
    }

    #[test]
    fn a_vessel_gets_exactly_what_it_reserved_and_no_privileges() {
        let gpus = vec!["GPU-a".to_string(), "GPU-b".to_string()];
        let spec = VesselSpec {
            id: "abc",
            fleet: "lab",
            name: "train",
            image: "vessel/base:latest",
            user: "alice",
            cores: &[2, 3],
            memory_bytes: 2 << 30,
            pids_limit: 4096,
            gpu_uuids: &gpus,
            address: Some("10.9.0.5"),
            disk_bytes: Some(20 << 30),
        };
        let body = container_body(&host(GpuRuntime::Nvidia), &spec);
        let hc = body.host_config.unwrap();
        assert_eq!(hc.cpuset_cpus.as_deref(), Some("2,3"));
        assert_eq!(hc.memory, Some(2 << 30));
        assert_eq!(hc.memory_swap, hc.memory);
        assert_eq!(hc.privileged, Some(false));
        let size = hc.storage_opt.as_ref().and_then(|o| o.get("size"));
        assert_eq!(size.map(String::as_str), Some("21474836480"));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        let binds = hc.binds.unwrap();
        assert_eq!(binds, vec!["/srv/homes/alice:/home/alice".to_string()]);
        assert!(!binds.iter().any(|b| b.contains("docker.sock")));
        let req = &hc.device_requests.unwrap()[0];
        assert_eq!(req.device_ids.as_ref().unwrap(), &gpus);
        assert!(body
            .env
            .unwrap()
            .contains(&"NVIDIA_VISIBLE_DEVICES=GPU-a,GPU-b".to_string()));
    }

    #[test]
    fn a_host_without_a_gpu_runtime_passes_visibility_only() {
        let gpus = vec!["GPU-a".to_string()];
        let spec = VesselSpec {
            id: "abc",
            fleet: "lab",
            name: "t",
            image: "i",
            user: "bob",
            cores: &[0],
            memory_bytes: 1 << 30,
            pids_limit: 100,
            gpu_uuids: &gpus,
            address: None,
            disk_bytes: None,
        };
        let body = container_body(&host(GpuRuntime::None), &spec);
        let hc = body.host_config.unwrap();
        assert!(hc.device_requests.is_none());
        assert!(hc.storage_opt.is_none(), "no size without a limit");
        let cdi = container_body(&host(GpuRuntime::Cdi), &spec);
        let ids = cdi.host_config.unwrap().device_requests.unwrap()[0]
            .device_ids
            .clone()
            .unwrap();
        assert_eq!(ids, vec!["nvidia.com/gpu=GPU-a".to_string()]);
    }
}
