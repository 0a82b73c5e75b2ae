//! What a host has: cores (with NUMA nodes), memory, and GPUs as
//! `nvidia-smi` reports them. One command over SSH, parsed here — and
//! checked: a GPU UUID ends up in a file the container's root sources, so a
//! UUID that is not what nvidia-smi prints fails the probe.

use super::ssh::SshSession;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// (core id, NUMA node)
    pub cores: Vec<(i32, i32)>,
    pub memory_bytes: i64,
    pub gpus: Vec<GpuInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    pub index: i32,
    /// Checked by [`is_gpu_uuid`].
    pub uuid: String,
    pub model: String,
    pub memory_mib: i32,
    pub pci_bus_id: String,
    pub numa_node: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Ssh(#[from] super::ssh::SshError),
    #[error("the probe command failed (exit {status}): {stderr}")]
    Command { status: u32, stderr: String },
    #[error("cannot read the probe's output: {0}")]
    Parse(String),
    #[error(
        "host {host}: GPU {index} reports the UUID {uuid:?}, which is not a GPU UUID as \
         nvidia-smi prints them (GPU- and hex digits): the host's inventory is refused"
    )]
    GpuUuid {
        host: String,
        index: i32,
        uuid: String,
    },
}

/// Prints three sections; GPU lines gain the NUMA node of their PCI device
/// (nvidia-smi prints an 8-digit PCI domain, sysfs a 4-digit one).
/// nvidia-smi's output is held in a variable, not a file: a fixed name in a
/// world-writable /tmp could be a symlink planted by anyone on the host
/// (the probe runs as root), and `set -e` still stops on its failure.
const PROBE: &str = r#"set -e
echo @cores
if command -v lscpu >/dev/null 2>&1; then
  lscpu -p=CPU,NODE | grep -v '^#'
else
  i=0; n=$(nproc --all); while [ "$i" -lt "$n" ]; do echo "$i,0"; i=$((i+1)); done
fi
echo @memory
awk '/^MemTotal:/ {print $2 * 1024}' /proc/meminfo
echo @gpus
if command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id --format=csv,noheader)
  printf '%s\n' "$gpus" | while IFS= read -r line; do
    [ -n "$line" ] || continue
    bus=$(printf '%s' "$line" | awk -F', *' '{print $5}' | tr 'A-F' 'a-f')
    node=$(cat "/sys/bus/pci/devices/${bus#0000}/numa_node" 2>/dev/null || echo 0)
    echo "$line, $node"
  done
fi
"#;

pub async fn probe(host: &str, session: &SshSession) -> Result<Inventory, ProbeError> {
    let (status, stdout, stderr) = session.exec(PROBE).await?;
    if status != 0 {
        return Err(ProbeError::Command {
            status,
            stderr: stderr.trim().chars().take(500).collect(),
        });
    }
    let inventory = parse(&stdout)?;
    if let Some(gpu) = inventory.gpus.iter().find(|g| !is_gpu_uuid(&g.uuid)) {
        return Err(ProbeError::GpuUuid {
            host: host.to_string(),
            index: gpu.index,
            uuid: gpu.uuid.chars().take(80).collect(),
        });
    }
    Ok(inventory)
}

/// A GPU UUID as `nvidia-smi` prints it: `GPU-` and hex digits in dashed
/// groups (`GPU-3c8e1f2a-…`). Nothing else may reach the init's env file,
/// which the container's root sources.
pub fn is_gpu_uuid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("GPU-") else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 64
        && rest.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && rest.chars().any(|c| c.is_ascii_hexdigit())
}

pub fn parse(output: &str) -> Result<Inventory, ProbeError> {
    let mut section = "";
    let mut inventory = Inventory {
        cores: Vec::new(),
        memory_bytes: 0,
        gpus: Vec::new(),
    };
    let bad = |line: &str| ProbeError::Parse(format!("unexpected line `{line}`"));
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(name) = line.strip_prefix('@') {
            section = match name {
                "cores" => "cores",
                "memory" => "memory",
                "gpus" => "gpus",
                _ => return Err(bad(line)),
            };
            continue;
        }
        match section {
            "cores" => {
                let (cpu, node) = line.split_once(',').ok_or_else(|| bad(line))?;
                let cpu = cpu.parse().map_err(|_| bad(line))?;
                // lscpu leaves the node empty on machines without NUMA.
                let node = node.trim().parse().unwrap_or(0);
                inventory.cores.push((cpu, node));
            }
            "memory" => {
                inventory.memory_bytes = line.parse::<f64>().map_err(|_| bad(line))? as i64;
            }
            "gpus" => {
                let fields: Vec<&str> = line.split(',').map(str::trim).collect();
                if fields.len() != 6 {
                    return Err(bad(line));
                }
                let memory_mib = fields[3]
                    .trim_end_matches("MiB")
                    .trim()
                    .parse()
                    .map_err(|_| bad(line))?;
                inventory.gpus.push(GpuInfo {
                    index: fields[0].parse().map_err(|_| bad(line))?,
                    uuid: fields[1].to_string(),
                    model: fields[2].to_string(),
                    memory_mib,
                    pci_bus_id: fields[4].to_string(),
                    numa_node: fields[5].parse::<i32>().unwrap_or(0).max(0),
                });
            }
            _ => return Err(bad(line)),
        }
    }
    if inventory.cores.is_empty() || inventory.memory_bytes <= 0 {
        return Err(ProbeError::Parse("no cores or memory reported".into()));
    }
    Ok(inventory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_gpu_server() {
        let out = "@cores\n0,0\n1,0\n2,1\n3,\n@memory\n25165824000\n@gpus\n\
                   0, GPU-aaaa, NVIDIA GeForce RTX 3090, 24576 MiB, 00000000:01:00.0, 0\n\
                   1, GPU-bbbb, NVIDIA GeForce RTX 3090, 24576 MiB, 00000000:81:00.0, -1\n";
        let inv = parse(out).unwrap();
        assert_eq!(inv.cores, vec![(0, 0), (1, 0), (2, 1), (3, 0)]);
        assert_eq!(inv.memory_bytes, 25_165_824_000);
        assert_eq!(inv.gpus.len(), 2);
        assert_eq!(inv.gpus[1].uuid, "GPU-bbbb");
        assert_eq!(inv.gpus[1].memory_mib, 24576);
        assert_eq!(inv.gpus[1].numa_node, 0, "-1 (no NUMA) reads as node 0");
    }

    #[test]
    fn a_gpu_uuid_that_would_break_out_of_the_env_file_is_not_a_gpu_uuid() {
        for good in [
            "GPU-3c8e1f2a-7b4d-4e5f-9a0b-1c2d3e4f5a6b",
            "GPU-AAAA",
            "GPU-0123abcd-0000",
        ] {
            assert!(is_gpu_uuid(good), "{good}");
        }
        for bad in [
            "GPU-x'; touch /pwned; echo '",
            "GPU-aaaa'",
            "GPU-aaaa\nVESSEL_USER=root",
            "GPU-aaaa bbbb",
            "GPU-$(id)",
            "GPU-`id`",
            "GPU-",
            "GPU----",
            "MIG-aaaa",
            "aaaa",
            "",
            &format!("GPU-{}", "a".repeat(65)),
        ] {
            assert!(!is_gpu_uuid(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_cpu_host_has_no_gpus_and_garbage_is_an_error() {
        let inv = parse("@cores\n0,0\n@memory\n1024\n@gpus\n").unwrap();
        assert!(inv.gpus.is_empty());
        assert!(parse("@cores\nzero\n").is_err());
        assert!(parse("").is_err());
    }
}
