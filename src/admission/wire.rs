//! The JSON the API server reads back. kube's `AdmissionResponse` serialises
//! its patch bytes as an array of numbers (kube-rs issue #1781); the API
//! documents `patch` as base64, like every Go `[]byte`, and the array is four
//! times larger. So the response review is written here, from kube's types.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionResponse, AdmissionReview};
use kube::core::response::Status;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireReview<'a> {
    api_version: &'a str,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<WireResponse<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse<'a> {
    uid: &'a str,
    allowed: bool,
    /// Absent when there is nothing to say: an allowed answer has no status.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    audit_annotations: &'a HashMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a Vec<String>>,
}

impl<'a> From<&'a AdmissionResponse> for WireResponse<'a> {
    fn from(r: &'a AdmissionResponse) -> Self {
        WireResponse {
            uid: &r.uid,
            allowed: r.allowed,
            status: (r.result != Status::default()).then_some(&r.result),
            patch: r.patch.as_ref().map(|p| STANDARD.encode(p)),
            // kube only ever sets a JSONPatch, and only together with the patch.
            patch_type: r.patch.as_ref().map(|_| "JSONPatch"),
            audit_annotations: &r.audit_annotations,
            warnings: r.warnings.as_ref(),
        }
    }
}

fn wire(review: &AdmissionReview<DynamicObject>) -> WireReview<'_> {
    WireReview {
        api_version: &review.types.api_version,
        kind: &review.types.kind,
        response: review.response.as_ref().map(WireResponse::from),
    }
}

/// The review as the API server reads it.
pub fn to_vec(review: &AdmissionReview<DynamicObject>) -> Result<Vec<u8>, serde_json::Error> {
    // Most responses fit: no regrowth while writing.
    let mut out = Vec::with_capacity(1024);
    serde_json::to_writer(&mut out, &wire(review))?;
    Ok(out)
}

/// The same, indented for people (`gracehook review`).
pub fn to_string_pretty(
    review: &AdmissionReview<DynamicObject>,
) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&wire(review))
}
