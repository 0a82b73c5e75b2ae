//! Who may hold a connection to the API: at most `total` at once (below the
//! process's file limit, so the database and the hosts always have file
//! descriptors left), and at most `per_peer` from one address, so one peer
//! holding thousands of half-sent requests cannot take every slot. A
//! connection over either limit is closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connections from one address at once. The bot, a browser and the CLI
/// hold a handful each; a TLS proxy in front of the API is one address for
/// everyone behind it, so raise `per_peer` there.
pub const PER_PEER: usize = 256;
/// Connections at once, whatever the file limit allows.
pub const TOTAL: usize = 8192;
/// File descriptors kept for everything else: the database pool, one SSH
/// connection per host, Docker streams, logs.
pub const RESERVED_FDS: usize = 512;

#[derive(Clone)]
pub struct Gate {
    total: usize,
    per_peer: usize,
    open: Arc<Mutex<Open>>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// One admitted connection; its slot is given back when it is dropped.
pub struct Permit {
    gate: Gate,
    peer: IpAddr,
}

impl Gate {
    pub fn new(total: usize, per_peer: usize) -> Gate {
        Gate {
            total,
            per_peer,
            open: Arc::default(),
        }
    }

    /// The gate for this process: `TOTAL`, or less where the file limit
    /// (`/proc/self/limits`) would run out first.
    pub fn for_this_process() -> Gate {
        let total =
            open_files_limit().map_or(TOTAL, |n| n.saturating_sub(RESERVED_FDS).clamp(64, TOTAL));
        Gate::new(total, PER_PEER.min(total))
    }

    pub fn admit(&self, peer: IpAddr) -> Option<Permit> {
        let mut open = self.open.lock().expect("gate lock");
        let mine = open.by_peer.get(&peer).copied().unwrap_or(0);
        if open.total >= self.total || mine >= self.per_peer {
            return None;
        }
        open.total += 1;
        open.by_peer.insert(peer, mine + 1);
        Some(Permit {
            gate: self.clone(),
            peer,
        })
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().expect("gate lock");
        open.total -= 1;
        if let Some(n) = open.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.by_peer.remove(&self.peer);
            }
        }
    }
}

/// The soft limit on open files, from `/proc/self/limits` (Linux).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files(&limits)
}

fn parse_open_files(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_cannot_take_every_slot_and_slots_come_back() {
        let gate = Gate::new(3, 2);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let first = gate.admit(a).expect("a first");
        let _second = gate.admit(a).expect("a second");
        assert!(gate.admit(a).is_none(), "a third from one peer");
        let _other = gate.admit(b).expect("another peer");
        assert!(gate.admit(b).is_none(), "over the total");
        drop(first);
        assert!(gate.admit(a).is_some(), "a slot given back");
    }

    #[test]
    fn the_file_limit_is_read_from_proc() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files(limits), Some(1024));
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }
}
