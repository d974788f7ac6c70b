//! Webhook-free mode: the plan written as in-tree admission policies — a
//! MutatingAdmissionPolicy and ValidatingAdmissionPolicies in CEL, run by
//! the API server itself — generated from the same [`Settings`](crate::planner::Settings) the webhook
//! uses (`docs/policy.md`, which lists where CEL cannot match the webhook).
//! Pure: text in, objects out. It may use the planner, nothing else.
//!
//! - [`cel`]: literals and the duration grammar in CEL;
//! - [`Options`] and [`generate()`]: what to generate, and the policies;
//! - `inputs`, `problems`, `decisions`, `sidecars`, `sentences`: the
//!   variables the policies share, in the order the planner reads and
//!   decides;
//! - [`matching`]: which requests and namespaces;
//! - [`mutating`] and [`validating`]: the objects, typed with k8s-openapi.

pub mod cel;
mod decisions;
mod generate;
mod inputs;
pub mod matching;
pub mod mutating;
mod options;
mod problems;
mod sentences;
mod sidecars;
pub mod validating;

pub use generate::{AUDIT, ENFORCE, NOTES, Policies, generate, to_yaml};
pub use mutating::Mutating;
pub use options::Options;
pub use validating::Validating;
