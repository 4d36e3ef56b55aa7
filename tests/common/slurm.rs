//! The real single-node Slurm for tests: whether it answers, and cleaning
//! up the jobs a test submitted.

use std::io::Write;
use std::time::{Duration, Instant};

use leaseq::slurm::SlurmCli;

/// Why real-Slurm tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    // Only look sinfo up: with the controller down, running it takes ~20 s.
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("sinfo").is_file()));
    if !on_path {
        return Some("`sinfo` is not on PATH (Slurm not installed; run scripts/ensure-slurm.sh)".into());
    }
    // `scontrol ping` answers at once, up or down.
    match SlurmCli::default().ping() {
        Ok(()) => None,
        Err(e) => Some(format!("the Slurm controller does not answer ({e}); run scripts/ensure-slurm.sh")),
    }
}

/// Skips (prints, returns true) or fails when Slurm is unavailable.
pub fn skip(test: &str) -> bool {
    let Some(why) = unavailable() else { return false };
    if std::env::var("LEASEQ_SLURM_TESTS").as_deref() == Ok("require") {
        panic!("{test}: LEASEQ_SLURM_TESTS=require but {why}");
    }
    // Straight to the stderr handle, not eprintln!: the test harness
    // captures the macros' output of passing tests, and a skip must show.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    true
}

/// Cancels the jobs a test submitted, however the test ends.
pub struct Jobs(pub Vec<String>);

impl Drop for Jobs {
    /// Cancels, then waits (up to 15 s) until the jobs have ended, so a job
    /// is not still starting while the test's temp dir (its output file's
    /// directory) is removed.
    fn drop(&mut self) {
        let cli = SlurmCli::default();
        for id in &self.0 {
            let _ = cli.release_lease(id);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let Ok(states) = cli.query_leases(&self.0) else { return };
            if states.values().all(|st| st.job().is_none_or(|j| !j.is_active())) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
