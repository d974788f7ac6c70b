//! What to generate: the planner's settings, the mode and whether
//! namespaces give defaults.

use crate::planner::{Mode, Settings};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The planner's settings, from the same flags as `serve`.
    pub settings: Settings,
    /// `Enforce`: mutate and deny in namespaces labelled enforce, warn in
    /// those labelled audit. `Audit`: only warn, in both (as `--dry-run`).
    pub mode: Mode,
    /// Read the Namespace's duration annotations as its defaults, as
    /// `serve --watch-namespaces` does.
    pub namespace_defaults: bool,
}

impl Options {
    /// Whether nothing is changed or denied anywhere.
    pub fn audit_only(&self) -> bool {
        self.mode == Mode::Audit || self.settings.dry_run
    }
}
