//! What a host's storage driver can limit: the size of a container's
//! writable layer (`--storage-opt size=`), or nothing, in which case the
//! undertaker measures each vessel's layer instead.

use bollard::Docker;

/// The storage a host's engine reported at the survey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// The engine's storage driver (`overlay2`, `btrfs`, `fuse-overlayfs` …).
    pub driver: String,
    /// Whether a container's writable layer can be given a size.
    pub limits_size: bool,
}

/// Whether `driver` on the backing filesystem `status` reports honours a
/// container's `size` storage option. Docker documents it for `btrfs`,
/// `zfs`, `devicemapper`, `windowsfilter`, and `overlay2` over xfs mounted
/// with project quotas. Whether xfs has `pquota` is not in `docker info`:
/// such a host is taken at its word, and a create the engine refuses for the
/// option falls back to measuring (see [`refuses_size`]).
pub fn limits_size(driver: &str, status: &[Vec<String>]) -> bool {
    let backing = status
        .iter()
        .find(|kv| kv.first().is_some_and(|k| k == "Backing Filesystem"))
        .and_then(|kv| kv.get(1))
        .map(String::as_str);
    match driver {
        "btrfs" | "zfs" | "devicemapper" | "windowsfilter" => true,
        "overlay2" => backing == Some("xfs"),
        _ => false,
    }
}

/// Asks the host's engine for its storage driver.
pub async fn read(docker: &Docker) -> Result<Storage, bollard::errors::Error> {
    let info = docker.info().await?;
    let driver = info.driver.unwrap_or_default();
    let status = info.driver_status.unwrap_or_default();
    Ok(Storage {
        limits_size: limits_size(&driver, &status),
        driver,
    })
}

/// Whether the engine refused a create for its `size` storage option (an
/// overlay2-on-xfs host without project quotas says "--storage-opt is
/// supported only for overlay over xfs with 'pquota' mount option").
pub fn refuses_size(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError { message, .. }
            if message.contains("storage-opt") || message.contains("storage opt")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_drivers_that_honour_a_size_are_trusted_with_one() {
        let xfs = vec![vec!["Backing Filesystem".to_string(), "xfs".to_string()]];
        let ext4 = vec![vec!["Backing Filesystem".to_string(), "extfs".to_string()]];
        let cases: [(&str, &[Vec<String>], bool); 6] = [
            ("overlay2", &xfs, true),
            ("overlay2", &ext4, false),
            ("overlay2", &[], false),
            ("btrfs", &[], true),
            ("zfs", &[], true),
            ("fuse-overlayfs", &xfs, false),
        ];
        for (driver, status, expected) in cases {
            assert_eq!(limits_size(driver, status), expected, "{driver} {status:?}");
        }
    }
}
