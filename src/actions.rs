//! The one interface every action goes through (cancel, retry, pause,
//! resume, recover, create and release leases, set the default lease).
//! Blocking: runs in the background, reports a message or a reason.

use crate::ui::messages::LeaseForm;

/// The sbatch command a lease form would run, for the form's preview.
pub fn form_preview(_form: &LeaseForm) -> Vec<String> {
    Vec::new()
}
