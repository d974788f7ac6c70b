//! The admission layer: AdmissionReview in, AdmissionReview out, without the
//! network (`docs/admission.md`). It may use the planner, never the server,
//! the cluster or the command line.
//!
//! - [`Admission`] (`reviewer`): one review body answered;
//! - `request`: reading the review, with a fast path for pods through
//!   [`pod_view`] (only the fields the planner reads);
//! - `response`: the answer to a planned pod, by mode;
//! - [`wire`]: the JSON written back, with the patch in base64;
//! - the types the server needs: [`Endpoint`], [`Outcome`] and [`Reviewed`],
//!   [`AdmissionError`], [`NamespaceLookup`].

mod endpoint;
mod error;
mod namespaces;
pub mod pod_view;
mod request;
mod response;
mod review;
mod reviewer;
pub mod wire;

pub use endpoint::Endpoint;
pub use error::{AdmissionError, AnswerError};
pub use namespaces::{NamespaceLookup, SharedLookup};
pub use review::{Outcome, Reviewed};
pub use reviewer::Admission;
