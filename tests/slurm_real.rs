//! `slurm` against a REAL Slurm: create a lease with `create_lease`, watch it
//! with `query_leases`, release it with `release_lease`.
//!
//! Needs a running cluster: `scripts/ensure-slurm.sh` starts one (as root;
//! it installs Slurm with apt-get if needed). Without `sinfo` on PATH or a
//! controller that answers, every test prints why and passes as skipped —
//! unless `LEASEQ_SLURM_TESTS=require`, when that is a failure. So:
//!
//! ```text
//! scripts/ensure-slurm.sh && LEASEQ_SLURM_TESTS=require cargo test --test slurm_real
//! ```
//!
//! `leaseq run` is stood in for by a tiny script that records its arguments
//! and sleeps. Every job a test submits is cancelled when the test ends,
//! pass or fail. Each test stays well under a minute.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use leaseq::model::{LeaseEntry, LeaseMeta, LeaseRegistry};
use leaseq::paths::{read_registry, write_registry, Env, Roots, RunDir};
use leaseq::slurm::{LeaseRequest, LeaseSlurmState, SlurmCli, SlurmError, SlurmJob};

mod common;
use common::slurm::{skip, Jobs};

struct Setup {
    _dir: tempfile::TempDir,
    roots: Roots,
    /// Stand-in for the leaseq binary: records its arguments, then sleeps.
    fake_leaseq: PathBuf,
    /// Where the stand-in writes `<job id>.args`.
    args_dir: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let roots = Roots::resolve(&Env {
        leaseq_home: Some(dir.path().join("home").into()),
        leaseq_runtime_dir: Some(dir.path().join("rt").into()),
        hostname: "h".into(),
        ..Env::default()
    });
    // A path with a space and a quote: the keeper script must quote it.
    let bin_dir = dir.path().join("bin dir'q");
    let args_dir = dir.path().join("args");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&args_dir).unwrap();
    let fake_leaseq = bin_dir.join("leaseq");
    let script = format!(
        "#!/bin/sh\ncd '{}' || exit 1\nprintf '%s\\n' \"$@\" > .tmp.$$\nmv .tmp.$$ \"$SLURM_JOB_ID.args\"\nexec sleep 120\n",
        args_dir.display()
    );
    std::fs::write(&fake_leaseq, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake_leaseq, std::fs::Permissions::from_mode(0o755)).unwrap();
    Setup { _dir: dir, roots, fake_leaseq, args_dir }
}

/// Polls `query_leases` for one id until `done` says so; returns every
/// distinct state label seen and the last state.
fn wait_for(
    id: &str,
    within: Duration,
    done: impl Fn(&LeaseSlurmState) -> bool,
) -> (Vec<String>, LeaseSlurmState) {
    let cli = SlurmCli::default();
    let deadline = Instant::now() + within;
    let mut seen: Vec<String> = Vec::new();
    loop {
        let states = cli.query_leases(&[id.to_string()]).expect("query_leases");
        let state = states.get(id).cloned().expect("every job id asked for is in the answer");
        if seen.last().map(String::as_str) != Some(state.label()) {
            seen.push(state.label().to_string());
        }
        if done(&state) {
            return (seen, state);
        }
        assert!(
            Instant::now() < deadline,
            "lease {id}: not there after {within:?}; states seen {seen:?}: {state:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn job(state: &LeaseSlurmState) -> &SlurmJob {
    state.job().unwrap_or_else(|| panic!("expected a job, got {state:?}"))
}

fn ended(state: &LeaseSlurmState) -> bool {
    match state {
        LeaseSlurmState::Gone => true,
        LeaseSlurmState::Job(job) => job.state == "CANCELLED",
    }
}

#[test]
fn lease_lifecycle_create_run_release() {
    if skip("lease_lifecycle_create_run_release") {
        return;
    }
    let t0 = Instant::now();
    let s = setup();
    // An existing registry: its default and entries must survive.
    let mut registry = LeaseRegistry { default_lease: Some("local:h".into()), ..Default::default() };
    registry.leases.insert("local:h".into(), LeaseEntry::default());
    write_registry(&s.roots.registry_path(), &registry).unwrap();

    let req = LeaseRequest {
        name: Some("leaseq real test".into()),
        nodes: 1,
        time: "5".into(),
        ..LeaseRequest::default()
    };
    let cli = SlurmCli::default();
    let id = cli.create_lease(&req, &s.roots, &s.fake_leaseq).expect("create_lease");
    let _jobs = Jobs(vec![id.clone()]);
    eprintln!("created lease {id} in {:?}", t0.elapsed());

    // Recorded on disk.
    let meta: LeaseMeta =
        serde_json::from_slice(&std::fs::read(RunDir(s.roots.run_dir(&id).unwrap()).meta()).unwrap())
            .unwrap();
    let LeaseMeta::Slurm { lease_id, name, slurm, .. } = meta else { panic!("not a slurm lease") };
    assert_eq!((lease_id.as_str(), name.as_deref()), (id.as_str(), Some("leaseq real test")));
    assert_eq!(&slurm.sbatch_args[..3], ["--nodes=1", "--time=5", "--job-name=leaseq real test"]);
    let registry = read_registry(&s.roots.registry_path()).unwrap();
    assert_eq!(registry.default_lease.as_deref(), Some("local:h"));
    assert!(registry.leases.contains_key("local:h"));
    assert_eq!(registry.leases[&id].name.as_deref(), Some("leaseq real test"));

    // RUNNING, with time left parsed.
    let (seen, state) = wait_for(&id, Duration::from_secs(20), |st| {
        st.job().is_some_and(|j| j.state == "RUNNING" && j.time_left.is_some())
    });
    let running = job(&state);
    eprintln!("RUNNING after {:?} (seen {seen:?}): {running:?}", t0.elapsed());
    let left = running.time_left_duration().expect("time left parses");
    assert!(left <= Duration::from_secs(300) && left >= Duration::from_secs(240), "{left:?}");
    assert_eq!(running.nodes, 1);
    assert_eq!(running.name, "leaseq real test");
    assert!(!running.partition.is_empty() && !running.node_list.is_empty(), "{running:?}");
    assert_eq!(running.reason, None);
    assert_eq!(running.gpus_per_node, None);

    // The keeper started one runner with the documented arguments.
    let args_file = s.args_dir.join(format!("{id}.args"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !args_file.exists() {
        assert!(Instant::now() < deadline, "the keeper never ran the runner ({})", args_file.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    let args = std::fs::read_to_string(&args_file).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(&args[..4], ["run", "--lease", id.as_str(), "--node"]);
    assert_eq!(args.len(), 5, "{args:?}");
    let node = args[4];
    assert!(node == running.node_list || node.starts_with(&format!("{}.", running.node_list)), "{args:?}");

    // Release: CANCELLED (perhaps COMPLETING first), or gone.
    let released = Instant::now();
    cli.release_lease(&id).expect("release_lease");
    let (seen, state) = wait_for(&id, Duration::from_secs(20), ended);
    eprintln!("released in {:?}; states seen {seen:?}; last {state:?}", released.elapsed());
    if let LeaseSlurmState::Job(job) = &state {
        assert_eq!(job.time_left, None, "an ended job has no time left");
    }
    // Releasing again is fine.
    cli.release_lease(&id).expect("second release_lease");
    // The keeper's output lands beside it and starts with its banner.
    let keepers: Vec<PathBuf> =
        std::fs::read_dir(s.roots.archive.join("keepers")).unwrap().flatten().map(|e| e.path()).collect();
    let out = keepers
        .iter()
        .find(|p| p.to_string_lossy().ends_with(&format!("-{id}.out")))
        .unwrap_or_else(|| panic!("no keeper output beside the script: {keepers:?}"));
    let text = std::fs::read_to_string(out).unwrap();
    eprintln!("keeper output:\n{text}");
    assert!(text.starts_with(&format!("leaseq keeper: job {id} on ")), "{text}");
    eprintln!("lease_lifecycle_create_run_release: {:?}", t0.elapsed());
}

/// Nodes in the cluster (sum over partitions' lines may double count; the
/// default partition holds them all here).
fn node_count() -> u32 {
    let out = Command::new("sinfo").args(["-h", "-o", "%D"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .sum::<u32>()
        .max(1)
}

#[test]
fn more_nodes_than_exist_stays_pending_with_a_reason() {
    if skip("more_nodes_than_exist_stays_pending_with_a_reason") {
        return;
    }
    let t0 = Instant::now();
    let s = setup();
    let nodes = node_count() + 1;
    let req = LeaseRequest { nodes, time: "5".into(), ..LeaseRequest::default() };
    let cli = SlurmCli::default();
    let id = cli.create_lease(&req, &s.roots, &s.fake_leaseq).expect("create_lease");
    let _jobs = Jobs(vec![id.clone()]);
    let (seen, state) = wait_for(&id, Duration::from_secs(20), |st| {
        st.job().is_some_and(|j| j.state == "PENDING" && j.reason.is_some())
    });
    let pending = job(&state);
    eprintln!("PENDING after {:?} (seen {seen:?}): {pending:?}", t0.elapsed());
    let reason = pending.reason.as_deref().unwrap();
    assert!(
        ["PartitionNodeLimit", "PartitionConfig", "Resources"].contains(&reason),
        "unexpected reason {reason}"
    );
    assert_eq!(pending.nodes, nodes);
    assert_eq!(pending.node_list, "");
    assert_eq!(
        pending.time_left.as_deref().and_then(leaseq::slurm::parse_slurm_duration),
        Some(Duration::from_secs(300))
    );
    // Nothing ran.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!s.args_dir.join(format!("{id}.args")).exists());

    cli.release_lease(&id).expect("release_lease");
    let (seen, _) = wait_for(&id, Duration::from_secs(20), ended);
    eprintln!("released: {seen:?}; test took {:?}", t0.elapsed());
}

#[test]
fn unknown_ids_are_gone_alone_and_in_a_list() {
    if skip("unknown_ids_are_gone_alone_and_in_a_list") {
        return;
    }
    let cli = SlurmCli::default();
    // Alone: squeue exits 1 with "Invalid job id specified".
    let states = cli.query_leases(&["999999999".to_string()]).expect("query of an unknown id");
    assert_eq!(states["999999999"], LeaseSlurmState::Gone);
    // In a list with a live job: one call, the live job and a Gone.
    let s = setup();
    let req = LeaseRequest { time: "2".into(), ..LeaseRequest::default() };
    let id = cli.create_lease(&req, &s.roots, &s.fake_leaseq).expect("create_lease");
    let _jobs = Jobs(vec![id.clone()]);
    let states = cli
        .query_leases(&[id.clone(), "999999998".to_string(), "local:h".to_string()])
        .expect("query of a list");
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(states[&id].job().is_some(), "{states:?}");
    assert_eq!(states["999999998"], LeaseSlurmState::Gone);
    let details = cli.scontrol_job(&id).unwrap().expect("scontrol knows the job");
    assert_eq!(details["JobId"], id);
    assert_eq!(cli.scontrol_job("999999999"), Ok(None));
}

#[test]
fn a_refused_submission_is_an_error_and_records_nothing() {
    if skip("a_refused_submission_is_an_error_and_records_nothing") {
        return;
    }
    let s = setup();
    // No node has 1024 GPUs: sbatch refuses at once (which message depends
    // on whether the cluster has GPUs configured at all).
    let req = LeaseRequest { gpus_per_node: 1024, time: "1".into(), ..LeaseRequest::default() };
    let err = SlurmCli::default().create_lease(&req, &s.roots, &s.fake_leaseq).unwrap_err();
    eprintln!("refused: {err}");
    match &err {
        SlurmError::Failed { command, stderr, .. } => {
            assert!(command.starts_with("sbatch --parsable --nodes=1"), "{command}");
            assert!(stderr.contains("error"), "{stderr}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!s.roots.registry_path().exists());
    assert!(!s.roots.archive.join("runs").exists());
}

#[test]
fn gpus_per_node_is_reported() {
    if skip("gpus_per_node_is_reported") {
        return;
    }
    let out = Command::new("sinfo").args(["-h", "-o", "%G"]).output().unwrap();
    let gres = String::from_utf8_lossy(&out.stdout).into_owned();
    if !gres.contains("gpu") {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED gpus_per_node_is_reported: no GPUs configured (sinfo %G = {:?}); \
                   scripts/ensure-slurm.sh starts a cluster with SLURM_LOCAL_GPUS=2",
            gres.trim()
        );
        return;
    }
    let s = setup();
    let req = LeaseRequest { gpus_per_node: 1, time: "2".into(), ..LeaseRequest::default() };
    let cli = SlurmCli::default();
    let id = cli.create_lease(&req, &s.roots, &s.fake_leaseq).expect("create_lease");
    let _jobs = Jobs(vec![id.clone()]);
    let (_, state) =
        wait_for(&id, Duration::from_secs(20), |st| st.job().is_some_and(|j| j.state == "RUNNING"));
    assert_eq!(job(&state).gpus_per_node, Some(1), "{state:?}");
    cli.release_lease(&id).unwrap();
    wait_for(&id, Duration::from_secs(20), ended);
}
