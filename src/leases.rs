//! Which leases exist and which one a command means.
//!
//! Owns: merging the registry (`index.json`), the archive's `runs/` and
//! this host's local runtime dir into one list, and resolving `--lease`,
//! `--local` and the default. Blocking I/O: call it off the UI thread.

use crate::runfs::{ListError, RunFs};
use std::path::PathBuf;

use crate::model::{LeaseMeta, LeaseRegistry};
use crate::paths::{is_valid_lease_id, read_registry, Roots, RunDir};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    Local,
    Slurm,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeaseInfo {
    pub id: String,
    pub kind: LeaseKind,
    pub run_dir: PathBuf,
    pub name: Option<String>,
    pub created_at: Option<i64>,
    pub meta: Option<LeaseMeta>,
    pub is_default: bool,
    /// The run directory exists.
    pub present: bool,
}

impl LeaseInfo {
    pub fn run(&self) -> RunDir {
        RunDir(self.run_dir.clone())
    }
}

pub fn kind_of(id: &str) -> LeaseKind {
    if id.starts_with("local:") {
        LeaseKind::Local
    } else {
        LeaseKind::Slurm
    }
}

/// A lease's `meta/lease.json`, if it is there and reads.
pub fn read_lease_meta(fs: &dyn RunFs, run: &RunDir) -> Option<LeaseMeta> {
    let bytes = fs.read_file(&run.meta(), crate::paths::SMALL_RECORD_BYTES).ok()?;
    crate::model::from_nested_record::<LeaseMeta>(&bytes).ok()
}

/// Every lease known from the registry, `runs/` and the local runtime dir,
/// sorted (local first, then by id). Problems are returned as messages next
/// to what could be read.
pub fn discover_leases(fs: &dyn RunFs, roots: &Roots) -> (Vec<LeaseInfo>, Vec<String>) {
    let mut problems = Vec::new();
    let registry = read_registry(&roots.registry_path()).unwrap_or_else(|e| {
        problems.push(e);
        LeaseRegistry::default()
    });
    let mut ids: Vec<String> = registry.leases.keys().cloned().collect();
    for dir in [roots.archive.join("runs"), roots.runtime.clone()] {
        match fs.list_dirs(&dir) {
            Ok(names) => {
                // The runtime dir may hold other things: only local leases.
                let belongs = |name: &String| dir != roots.runtime || name.starts_with("local:");
                ids.extend(names.into_iter().filter(|n| belongs(n) && !n.starts_with('.')));
            }
            Err(ListError::NotFound) => {}
            Err(error) => problems.push(error.describe(&dir)),
        }
    }
    // An id becomes a path component only when it is a lease id: a hostile
    // registry entry (`../../x`, `/abs`, `""`) is reported, never opened.
    ids.retain(|id| {
        let ok = is_valid_lease_id(id);
        if !ok {
            problems.push(format!(
                "{} names lease {:?}, which is not a lease id (digits, or local:<host>); ignored",
                roots.registry_path().display(),
                crate::sanitize::clean_line(id)
            ));
        }
        ok
    });
    ids.sort_by(|a, b| (kind_of(a) == LeaseKind::Slurm, a).cmp(&(kind_of(b) == LeaseKind::Slurm, b)));
    ids.dedup();
    let leases = ids
        .into_iter()
        .map(|id| {
            let run = RunDir(roots.run_dir(&id).unwrap_or_default());
            let entry = registry.leases.get(&id).cloned().unwrap_or_default();
            let meta = read_lease_meta(fs, &run);
            let meta_name = match &meta {
                Some(LeaseMeta::Slurm { name, .. }) => name.clone(),
                _ => None,
            };
            LeaseInfo {
                kind: kind_of(&id),
                present: fs.probe(&run.0).is_ok_and(|found| found == Some(false)),
                is_default: registry.default_lease.as_deref() == Some(id.as_str()),
                name: entry.name.or(meta_name),
                created_at: entry.created_at,
                run_dir: run.0,
                meta,
                id,
            }
        })
        .collect();
    (leases, problems)
}

/// What the user asked to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseChoice<'a> {
    Named(&'a str),
    Local,
    Default,
}

/// Resolves a choice to a lease id, or a message saying what exists.
pub fn resolve(roots: &Roots, leases: &[LeaseInfo], choice: LeaseChoice) -> Result<String, String> {
    match choice {
        LeaseChoice::Named(id) => Ok(id.to_string()),
        LeaseChoice::Local => Ok(roots.local_lease_id()),
        LeaseChoice::Default => {
            if let Some(default) = leases.iter().find(|l| l.is_default) {
                return Ok(default.id.clone());
            }
            let present: Vec<&LeaseInfo> = leases.iter().filter(|l| l.present).collect();
            match present.as_slice() {
                [only] => Ok(only.id.clone()),
                [] => Err(format!(
                    "no leases under {} (set LEASEQ_HOME, or pass --lease ID)",
                    roots.archive.display()
                )),
                many => Err(format!(
                    "several leases and no default; pass --lease with one of: {}",
                    many.iter().map(|l| l.id.as_str()).collect::<Vec<_>>().join(", ")
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::{write_registry, Env};

    #[test]
    fn merges_registry_runs_and_local_runtime() {
        let tmp = tempfile::tempdir().unwrap();
        let env = Env {
            leaseq_home: Some(tmp.path().join("home").into()),
            leaseq_runtime_dir: Some(tmp.path().join("rt").into()),
            hostname: "h".into(),
            ..Env::default()
        };
        let roots = Roots::resolve(&env);
        std::fs::create_dir_all(roots.archive.join("runs/123")).unwrap();
        std::fs::create_dir_all(roots.runtime.join("local:h")).unwrap();
        let mut registry = LeaseRegistry { default_lease: Some("456".into()), ..Default::default() };
        registry.leases.insert("456".into(), Default::default());
        write_registry(&roots.registry_path(), &registry).unwrap();

        let (leases, problems) = discover_leases(&crate::runfs::FsSource, &roots);
        assert!(problems.is_empty());
        let ids: Vec<&str> = leases.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, vec!["local:h", "123", "456"]);
        assert!(!leases[2].present && leases[2].is_default);
        assert_eq!(resolve(&roots, &leases, LeaseChoice::Default).unwrap(), "456");
        assert_eq!(resolve(&roots, &leases, LeaseChoice::Local).unwrap(), "local:h");
    }
}
