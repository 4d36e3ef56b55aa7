//! The one interface every action goes through (cancel, retry, pause,
//! resume, recover, create and release leases, set the default lease).
//! Blocking: runs in the background and reports a message or a reason.

use crate::control;
use crate::paths::{read_registry, write_registry, Roots};
use crate::runfs::RunFs;
use crate::slurm::{self, LeaseRequest};
use crate::ui::messages::{Action, LeaseForm};

/// What actions need besides their own arguments.
#[derive(Clone)]
pub struct ActionContext {
    pub roots: Roots,
    pub stale_after_s: i64,
    /// The run directories' filesystem.
    pub fs: std::sync::Arc<dyn RunFs>,
}

impl ActionContext {
    /// On the real filesystem.
    pub fn new(roots: Roots, stale_after_s: i64) -> ActionContext {
        ActionContext { roots, stale_after_s, fs: std::sync::Arc::new(crate::runfs::FsSource) }
    }
}

/// Performs an action; `Ok` carries what happened, `Err` why not.
pub fn perform(action: &Action, context: &ActionContext) -> Result<String, String> {
    let fs = &*context.fs;
    match action {
        Action::CancelTask { run, name, task_id, node } => {
            match control::cancel(fs, run, node, name, task_id)? {
                control::CancelOutcome::CancelledPending => {
                    Ok(format!("{task_id} cancelled (it was pending)"))
                }
                control::CancelOutcome::Requested(_) => Ok(format!(
                "cancel of {task_id} sent to {node}'s runner (SIGTERM, then SIGKILL after its grace period)"
            )),
            }
        }
        Action::RetryTask { run, name, node } => {
            let path = control::retry(fs, run, node, name)?;
            let stem = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let id = crate::model::TaskName::parse(&stem).map_or(stem.clone(), |n| n.task_id.to_string());
            Ok(format!("queued again as {id} on {node}"))
        }
        Action::PauseNode { run, node } => {
            control::pause(fs, run, node)?;
            Ok(format!("{node} paused: its runner claims no new tasks"))
        }
        Action::ResumeNode { run, node } => {
            control::resume(fs, run, node)?;
            Ok(format!("{node} resumed"))
        }
        Action::RecoverNode { run, node } => {
            let moved = control::recover(fs, run, node, context.stale_after_s)?;
            Ok(format!("moved {moved} task(s) from claimed/ back to inbox/ on {node}"))
        }
        Action::CreateLease(form) => {
            let request = lease_request(form)?;
            let runner = slurm::runner_binary()?;
            let id = slurm::create_lease(&request, &context.roots, &runner).map_err(|e| e.to_string())?;
            Ok(format!("submitted Slurm lease {id}"))
        }
        Action::ReleaseLease { id } => {
            slurm::release_lease(id).map_err(|e| e.to_string())?;
            Ok(format!("scancel {id} sent"))
        }
        Action::SetDefaultLease { id } => {
            let path = context.roots.registry_path();
            let mut registry = read_registry(&path)?;
            registry.default_lease = Some(id.clone());
            registry.leases.entry(id.clone()).or_default();
            write_registry(&path, &registry).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(format!("{id} is the default lease"))
        }
    }
}

fn optional(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The form as typed, checked and converted.
pub fn lease_request(form: &LeaseForm) -> Result<LeaseRequest, String> {
    let nodes =
        form.nodes.trim().parse::<u32>().map_err(|_| format!("nodes: {:?} is not a number", form.nodes))?;
    let gpus = match form.gpus_per_node.trim() {
        "" => 0,
        text => text.parse::<u32>().map_err(|_| format!("gpus-per-node: {text:?} is not a number"))?,
    };
    let request = LeaseRequest {
        name: optional(&form.name),
        nodes,
        time: form.time.trim().to_string(),
        partition: optional(&form.partition),
        qos: optional(&form.qos),
        account: optional(&form.account),
        constraint: optional(&form.constraint),
        reservation: optional(&form.reservation),
        gpus_per_node: gpus,
        extra_args: form.extra_args.iter().filter_map(|a| optional(a)).collect(),
    };
    request.validate()?;
    Ok(request)
}

/// The sbatch command a lease form would run, for the form's preview, or
/// what is wrong with the form.
pub fn form_preview(form: &LeaseForm) -> Vec<String> {
    match lease_request(form) {
        Ok(request) => vec![request.preview(std::path::Path::new("<archive>/keepers/keeper-<time>.sh"))],
        Err(problem) => vec![format!("(not ready: {problem})")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Env;

    fn context(home: &std::path::Path) -> ActionContext {
        let env = Env { leaseq_home: Some(home.into()), hostname: "h".into(), ..Env::default() };
        ActionContext::new(Roots::resolve(&env), 60)
    }

    #[test]
    fn a_malformed_lease_form_is_refused_with_the_field() {
        let tmp = tempfile::tempdir().unwrap();
        let bad = LeaseForm { nodes: "many".into(), ..LeaseForm::default() };
        assert!(perform(&Action::CreateLease(bad), &context(tmp.path())).unwrap_err().contains("nodes"));
    }

    #[test]
    fn set_default_lease_updates_the_registry() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path());
        let message = perform(&Action::SetDefaultLease { id: "42".into() }, &ctx).unwrap();
        assert!(message.contains("42"));
        let registry = read_registry(&ctx.roots.registry_path()).unwrap();
        assert_eq!(registry.default_lease.as_deref(), Some("42"));
    }

    #[test]
    fn releasing_a_local_lease_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(perform(&Action::ReleaseLease { id: "local:h".into() }, &context(tmp.path())).is_err());
    }
}
