//! The planner: pod + settings -> plan -> JSON patch, and the renderings of a
//! plan for people. Pure: no I/O, no clock, no globals; it uses nothing else
//! in the crate.
//!
//! - inputs: [`duration`] (Go-style durations), [`annotations`] (the
//!   `gracehook.io/*` keys), [`settings`] (the operator's flags);
//! - the decision: [`mod@plan`], with the grace-period formula in [`grace`] and
//!   the hooks in [`hook`] (and the drain commands that end their server,
//!   [`self_exit`]), and the sidecars that must outlive the application in
//!   [`sidecars`];
//! - renderings: [`patch`] (RFC 6902 for the API server), [`summary`]
//!   (warning sentences), [`explain`] (a termination timeline), and
//!   [`offline`] (the plan applied offline to YAML/JSON manifests, for
//!   `gracehook mutate`).

pub mod annotations;
pub mod duration;
pub mod explain;
pub mod grace;
pub mod hook;
pub mod offline;
pub mod patch;
pub mod plan;
pub mod self_exit;
pub mod settings;
pub mod sidecars;
pub mod summary;

pub use hook::{Hook, HookAction};
pub use plan::{ContainerPlan, Decision, Plan, PlanError, Planned, Skip, plan, plan_in};
pub use settings::{Defaults, Mode, NamespaceDefaults, PrestopStyle, Settings};
