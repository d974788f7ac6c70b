//! `gracehook observe`: did the drains work? A controller beside the
//! webhook (never on its request path) that follows every pod gracehook
//! patched through its termination and decides one outcome per pod
//! (`docs/observe.md`). It may use the planner and the server's operations
//! port, never the command line.
//!
//! - [`facts`]: a pod's final object, read into small plain values;
//! - [`outcome`]: the rules, pure;
//! - [`tracker`]: the watch streams -> terminations that are over, once each;
//! - [`owners`]: the workload a pod belongs to;
//! - [`record`]: the Events on the workload, one series per outcome, and the
//!   numbers `gracehook drains` reads back ([`drains`]);
//! - [`metrics`]: what `/metrics` reports;
//! - [`run()`]: leader election on a Lease, and the loop.

mod args;
pub mod drains;
mod error;
pub mod facts;
pub mod metrics;
pub mod outcome;
pub mod owners;
pub mod record;
mod run;
pub mod tracker;

pub use args::ObserveArgs;
pub use error::ObserveError;
pub use run::run;
