//! Which task a TASK argument means: a task id, a file name (with or
//! without `.json` or a result suffix), or a unique prefix of either. Task
//! ids collide (24 bits), so an id shared by several tasks lists them.

use crate::index::{Index, TaskId, TaskState};
use crate::model::parse_entry;
use crate::sanitize::clean_line;

/// A task found in a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRef {
    pub id: TaskId,
    pub name: String,
    pub task_id: String,
    pub node: String,
    pub state: TaskState,
}

fn task_ref(index: &Index, id: TaskId) -> Option<TaskRef> {
    let task = index.task(id)?;
    Some(TaskRef {
        id,
        name: task.name.to_string(),
        task_id: task.task_id().to_string(),
        node: index.node_name(task.node).to_string(),
        state: task.state,
    })
}

/// Every task whose id or name is `wanted`, else whose id or name starts
/// with it.
fn candidates(index: &Index, wanted: &str) -> Vec<TaskRef> {
    let stem = parse_entry(wanted).map_or(wanted, |(stem, _)| stem);
    let all = || (0..index.task_count() as TaskId).filter_map(|id| task_ref(index, id));
    let exact: Vec<TaskRef> = all().filter(|t| t.name == stem || t.task_id == stem).collect();
    if !exact.is_empty() {
        return exact;
    }
    all().filter(|t| t.name.starts_with(stem) || t.task_id.starts_with(stem)).collect()
}

/// The one task `wanted` means, or a message: none, or the candidates.
pub fn resolve_task(index: &Index, wanted: &str) -> Result<TaskRef, String> {
    if wanted.is_empty() {
        return Err("an empty task argument names no task".to_string());
    }
    let mut found = candidates(index, wanted);
    match found.len() {
        0 => Err(format!(
            "no task {:?} in this lease (give a task id like T1a2b3c, a task file name, or a unique prefix; \
             `leaseq tasks` lists them)",
            clean_line(wanted)
        )),
        1 => Ok(found.remove(0)),
        n => {
            found.sort_by(|a, b| b.name.cmp(&a.name));
            let shown: Vec<String> = found
                .iter()
                .take(20)
                .map(|t| {
                    format!(
                        "  {}  {}  {}  {}",
                        clean_line(&t.task_id),
                        t.state,
                        clean_line(&t.node),
                        clean_line(&t.name)
                    )
                })
                .collect();
            Err(format!(
                "{:?} matches {n} tasks; name one by its file name:\n{}{}",
                clean_line(wanted),
                shown.join("\n"),
                if n > 20 { format!("\n  ... and {} more", n - 20) } else { String::new() }
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Event;

    fn index(names: &[&str]) -> Index {
        let mut index = Index::new(60);
        let added = names.iter().map(|n| format!("{n}.json")).collect();
        let round = crate::index::Round {
            node: "a".into(),
            dirs: vec![(crate::paths::QueueDir::Inbox, crate::index::DirOutcome::changed(added, Vec::new()))],
        };
        index.apply(Event::Round(round));
        index
    }

    const U1: &str = "11111111-1111-4111-8111-111111111111";
    const U2: &str = "22222222-2222-4222-8222-222222222222";

    #[test]
    fn by_id_name_prefix_and_ambiguity() {
        let a = format!("0001_Tabc123_{U1}");
        let b = format!("0002_Tabc123_{U2}");
        let c = format!("0003_Tfff000_{U2}");
        let index = index(&[&a, &b, &c]);
        assert_eq!(resolve_task(&index, "Tfff000").unwrap().name, c);
        assert_eq!(resolve_task(&index, "Tfff").unwrap().name, c);
        assert_eq!(resolve_task(&index, &format!("{a}.json")).unwrap().name, a);
        assert_eq!(resolve_task(&index, &format!("{b}.result.json")).unwrap().name, b);
        let ambiguous = resolve_task(&index, "Tabc123").unwrap_err();
        assert!(
            ambiguous.contains("matches 2 tasks") && ambiguous.contains(&a) && ambiguous.contains(&b),
            "{ambiguous}"
        );
        assert!(resolve_task(&index, "Tzzz").unwrap_err().contains("no task"));
    }
}
