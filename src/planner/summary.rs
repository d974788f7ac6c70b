//! Human sentences about a plan: the one-line `gracehook audit:` warning and the
//! enforce-mode warnings. Kubernetes truncates warnings over 256 characters and
//! kubectl prints them on one line, so every sentence is kept short.

use super::hook::Hook;
use super::plan::{Plan, Skip};
use super::self_exit;

/// The budget for the audit warning (`docs/admission.md`, "Audit mode").
pub const AUDIT_WARNING_MAX: usize = 200;
/// The API server's limit for any warning.
pub const WARNING_MAX: usize = 256;
/// The start of every audit-mode warning.
pub const AUDIT_PREFIX: &str = "gracehook audit: ";
/// The start of every enforce-mode warning.
pub const ENFORCE_PREFIX: &str = "gracehook: ";

/// `would set terminationGracePeriodSeconds 30 -> 40 and add preStop (...) to container web`.
pub fn would_change(plan: &Plan) -> String {
    let mut parts = Vec::new();
    if let Some(new) = plan.new_grace() {
        let current = plan
            .current_grace
            .map_or_else(|| "(unset)".to_string(), |g| g.to_string());
        parts.push(format!(
            "set terminationGracePeriodSeconds {current} -> {new}"
        ));
    }
    // Containers that get the same hook are named together.
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for (container, hook) in plan.added_hooks() {
        let description = hook.describe();
        match groups.iter_mut().find(|(d, _)| *d == description) {
            Some((_, names)) => names.push(&container.name),
            None => groups.push((description, vec![&container.name])),
        }
    }
    for (description, names) in groups {
        let noun = if names.len() == 1 {
            "container"
        } else {
            "containers"
        };
        parts.push(format!(
            "add preStop ({description}) to {noun} {}",
            names.join(", ")
        ));
    }
    if parts.is_empty() {
        parts.push("only record the gracehook.io/status annotation".to_string());
    }
    format!("would {}", parts.join(" and "))
}

/// The one audit-mode warning for a pod that would change.
pub fn audit_warning(plan: &Plan) -> String {
    let mut text = format!("{AUDIT_PREFIX}{}", would_change(plan));
    for note in &plan.notes {
        text.push_str("; ");
        text.push_str(note);
    }
    truncate(&text, AUDIT_WARNING_MAX)
}

/// The audit-mode warning for a pod with an invalid annotation.
pub fn audit_invalid(error: &dyn std::fmt::Display) -> String {
    truncate(&format!("{AUDIT_PREFIX}{error}"), AUDIT_WARNING_MAX)
}

/// The enforce-mode notes on drain commands that end their server
/// ([`self_exit`]), in container order: for whoever applies the pod, not
/// for the audit summary, which says what would change.
pub fn self_exit_notes(plan: &Plan) -> Vec<String> {
    plan.containers
        .iter()
        .filter(|c| {
            matches!(c.action.hook(), Some(Hook::Shell { command: Some((command, _)), .. })
                if self_exit::exits_by_itself(command))
        })
        .map(|c| self_exit::note(&c.name))
        .collect()
}

/// The enforce-mode warnings: a raised grace period, the plan's notes, and
/// [`self_exit_notes`].
pub fn enforce_warnings(plan: &Plan) -> Vec<String> {
    let raised = match (plan.current_grace, plan.new_grace()) {
        (Some(current), Some(new)) => Some(format!(
            "raised terminationGracePeriodSeconds from {current} to {new} (longest drain delay + request timeout, plus margin {}s)",
            plan.margin
        )),
        _ => None,
    };
    raised
        .iter()
        .chain(&plan.notes)
        .chain(&self_exit_notes(plan))
        .map(|n| truncate(&format!("{ENFORCE_PREFIX}{n}"), WARNING_MAX))
        .collect()
}

/// The warning for a pod left alone, when the reason deserves one.
pub fn skip_warning(skip: &Skip, name: &str) -> Option<String> {
    match skip {
        Skip::TooManyContainers { .. } => {
            Some(format!("gracehook: pod {name} left untouched: {skip}"))
        }
        _ => None,
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    const MARK: &str = "...";
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_limits_and_characters() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(200);
        let cut = truncate(&long, 200);
        assert!(cut.len() <= 200, "{}", cut.len());
        assert!(cut.ends_with("..."));
    }
}
