//! A create request with the queue's defaults filled in and every value
//! checked against the queue (sizes, the images it allows, its longest
//! lifetime), before anything is written.

use rand::Rng;
use vessel_api::vessels::CreateVessel;

use super::{Ctx, OpError};
use crate::domain::{QueueName, VesselName};
use crate::units::{ByteSize, Span};

/// A request with the queue's defaults filled in, every value checked.
pub struct Plan {
    pub queue: QueueName,
    pub gpus: i32,
    pub cpus: i32,
    pub memory: ByteSize,
    pub image: String,
    pub name: Option<VesselName>,
    pub lifetime: Span,
}

pub fn plan(ctx: &Ctx, body: CreateVessel) -> Result<Plan, OpError> {
    let queue = body
        .queue
        .ok_or_else(|| OpError::invalid("queue", "which queue? name one"))?;
    let Some(defaults) = ctx.config.queue(queue.as_str()) else {
        let known: Vec<&str> = ctx.config.queues.keys().map(String::as_str).collect();
        return Err(OpError::invalid(
            "queue",
            format!("no queue `{queue}`; queues: {}", known.join(", ")),
        ));
    };
    let gpus = body.gpus.unwrap_or(defaults.gpus);
    if gpus > 64 {
        return Err(OpError::invalid("gpus", "at most 64"));
    }
    let cpus = body.cpus.unwrap_or(defaults.cpus);
    if !(1..=1024).contains(&cpus) {
        return Err(OpError::invalid("cpus", "between 1 and 1024"));
    }
    let memory = body.memory.unwrap_or(defaults.memory);
    if memory.bytes() < 64 << 20 {
        return Err(OpError::invalid("memory", "at least 64M"));
    }
    let image = body
        .image
        .map(String::from)
        .unwrap_or_else(|| defaults.image.clone());
    check_image(&queue, &image, &defaults.image, &defaults.images)?;
    let lifetime = body.lifetime.unwrap_or(defaults.lifetime);
    if lifetime > defaults.max_lifetime {
        return Err(OpError::invalid(
            "lifetime",
            format!("at most {} in queue `{queue}`", defaults.max_lifetime),
        ));
    }
    Ok(Plan {
        queue,
        gpus: gpus as i32,
        cpus: cpus as i32,
        memory,
        image,
        name: body.name,
        lifetime,
    })
}

/// The images a queue offers: its default first, then the others it lists
/// (`repo:*` entries as written).
pub fn images_of(default: &str, listed: &[String]) -> Vec<String> {
    let mut out = vec![default.to_string()];
    out.extend(listed.iter().filter(|i| *i != default).cloned());
    out
}

/// Deny by default: a queue without an `images` list runs its default
/// image only, never whatever else happens to be on the host (another
/// team's private image).
fn check_image(
    queue: &QueueName,
    image: &str,
    default: &str,
    listed: &[String],
) -> Result<(), OpError> {
    if image == default || image_allowed(image, listed) {
        return Ok(());
    }
    Err(OpError::invalid(
        "image",
        format!(
            "queue `{queue}` allows these images: {}",
            images_of(default, listed).join(", ")
        ),
    ))
}

/// An exact entry, or `repo:*` for any tag of one repository (`lab/cuda:*`).
fn image_allowed(image: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|entry| match entry.strip_suffix(":*") {
        Some(repo) => image
            .strip_prefix(repo)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|tag| !tag.is_empty() && !tag.contains(['/', ':'])),
        None => entry == image,
    })
}

pub fn generated_name(queue: &QueueName) -> String {
    let mut rng = rand::thread_rng();
    let suffix: String = (0..4)
        .map(|_| {
            let n = rng.gen_range(0..36u8);
            (if n < 10 { b'0' + n } else { b'a' + n - 10 }) as char
        })
        .collect();
    let queue: String = queue
        .as_str()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(20)
        .collect();
    format!("v{queue}-{suffix}")
}

pub fn hex_token() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::image_allowed;

    #[test]
    fn images_are_allowed_exactly_or_by_repository() {
        let allowed = vec!["lab/cuda:*".to_string(), "vessel/base:1".to_string()];
        for ok in ["lab/cuda:12.4", "vessel/base:1"] {
            assert!(image_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "lab/cuda",
            "lab/cuda:",
            "lab/cudax:1",
            "lab/cuda:1/evil",
            "vessel/base:2",
            "other/img:1",
        ] {
            assert!(!image_allowed(bad, &allowed), "{bad}");
        }
    }
}
