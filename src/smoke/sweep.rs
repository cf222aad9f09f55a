//! The CPU/memory profiles `smoke --sweep` tries, smallest first: only combinations Cloud Run
//! accepts (the rules live in [`crate::check::cloudrun`]).

use crate::check::cloudrun::{min_cpu_for_memory, min_memory_for_cpu, valid_cpu};
use crate::service::config::format_memory;
use crate::service::Service;
use serde::{Serialize, Serializer};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Cloud Run's defaults when a service has no `[deploy]`.
const DEFAULT_CPU: f64 = 1.0;
const DEFAULT_MEMORY: u64 = 512 * MIB;

/// The candidates, in the order they are tried (cost: memory first, then CPU).
const CANDIDATES: &[(f64, u64)] = &[
    (0.5, 256 * MIB),
    (0.5, 512 * MIB),
    (1.0, 512 * MIB),
    (1.0, GIB),
    (1.0, 2 * GIB),
    (2.0, 4 * GIB),
    (4.0, 8 * GIB),
];

/// CPUs and memory one container gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub cpu: f64,
    /// Bytes.
    pub memory: u64,
}

impl Profile {
    /// The service's `[deploy]` limits, or Cloud Run's defaults.
    pub fn of(svc: &Service) -> Profile {
        svc.deploy.as_ref().map_or(
            Profile {
                cpu: DEFAULT_CPU,
                memory: DEFAULT_MEMORY,
            },
            |d| Profile {
                cpu: d.cpu,
                memory: d.memory,
            },
        )
    }

    /// Whether Cloud Run accepts this combination.
    pub fn accepted(&self) -> bool {
        valid_cpu(self.cpu)
            && (128 * MIB..=32 * GIB).contains(&self.memory)
            && self.cpu >= min_cpu_for_memory(self.memory)
            && self.memory >= min_memory_for_cpu(self.cpu)
    }

    /// `1 CPU / 512Mi`.
    pub fn label(&self) -> String {
        format!("{} CPU / {}", self.cpu, format_memory(self.memory))
    }
}

impl Serialize for Profile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Profile", 3)?;
        st.serialize_field("cpu", &self.cpu)?;
        st.serialize_field("memory", &self.memory)?;
        st.serialize_field("memory_text", &format_memory(self.memory))?;
        st.end()
    }
}

/// The profiles `--sweep` runs, smallest first, each one Cloud Run accepts.
pub fn profiles() -> Vec<Profile> {
    CANDIDATES
        .iter()
        .map(|&(cpu, memory)| Profile { cpu, memory })
        .filter(Profile::accepted)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sweep_profile_is_one_cloud_run_accepts_and_they_grow() {
        let p = profiles();
        assert_eq!(
            p.len(),
            CANDIDATES.len(),
            "a candidate Cloud Run rejects: {p:?}"
        );
        assert!(p
            .windows(2)
            .all(|w| w[0].memory <= w[1].memory && w[0].cpu <= w[1].cpu));
        assert_eq!(p[0].label(), "0.5 CPU / 256Mi");
    }

    #[test]
    fn rejected_combinations_are_filtered() {
        // 4 CPUs need 2 GiB; 0.5 CPU cannot have 2 GiB; 3 CPUs do not exist.
        for (cpu, memory) in [
            (4.0, GIB),
            (0.5, 2 * GIB),
            (3.0, 4 * GIB),
            (0.05, 128 * MIB),
        ] {
            assert!(!Profile { cpu, memory }.accepted(), "{cpu}/{memory}");
        }
        assert!(Profile {
            cpu: 1.0,
            memory: 512 * MIB
        }
        .accepted());
    }
}
