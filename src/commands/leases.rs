//! `leaseq lease ls`: every lease with its state, as the dashboard's lease
//! list shows it (the same rows), as a table or JSON.

use serde::Serialize;

use crate::sanitize::clean_line;
use crate::ui::messages::LeaseRow;

#[derive(Serialize)]
struct LeaseJson<'a> {
    lease: &'a str,
    kind: &'static str,
    state: &'a str,
    capacity: &'a str,
    time_left: &'a str,
    name: &'a str,
    reason: &'a str,
    default: bool,
    run_dir: String,
}

pub fn leases_json(rows: &[LeaseRow]) -> String {
    let rows: Vec<LeaseJson> = rows
        .iter()
        .map(|r| LeaseJson {
            lease: &r.id,
            kind: if r.slurm { "slurm" } else { "local" },
            state: &r.state,
            capacity: &r.capacity,
            time_left: &r.time_left,
            name: &r.name,
            reason: &r.reason,
            default: r.is_default,
            run_dir: r.run_dir.0.display().to_string(),
        })
        .collect();
    crate::cli::json_text(&rows) + "\n"
}

pub fn leases_text(rows: &[LeaseRow], slurm_error: Option<&str>) -> String {
    let mut out = format!(
        "{:<22} {:<6} {:<11} {:<16} {:<11} {}\n",
        "LEASE", "TYPE", "STATE", "CAPACITY", "LEFT", "NAME / REASON"
    );
    for r in rows {
        let mark = if r.is_default { " *default" } else { "" };
        let note = [r.name.as_str(), r.reason.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("  ");
        out.push_str(&format!(
            "{:<22} {:<6} {:<11} {:<16} {:<11} {}{}\n",
            clean_line(&r.id),
            if r.slurm { "slurm" } else { "local" },
            clean_line(&r.state),
            clean_line(&r.capacity),
            clean_line(&r.time_left),
            clean_line(&note),
            mark
        ));
    }
    if rows.is_empty() {
        out.push_str("(no leases: `leaseq daemon start` starts the local one, `leaseq lease create --slurm` a Slurm one)\n");
    }
    if let Some(error) = slurm_error {
        out.push_str(&format!("slurm: {}\n", clean_line(error)));
    }
    out
}
