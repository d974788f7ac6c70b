//! The grace-period formula (`docs/plan.md`, "Grace period"):
//!
//! ```text
//! grace = max over eligible containers of (drain delay + request timeout)
//!         + the sidecars' shutdown + margin
//! ```
//!
//! set when the pod has none, raised when lower, never lowered; above
//! `--max-grace` the pod is invalid.

use thiserror::Error;

use super::annotations as ann;

/// What one application container asks of the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need<'a> {
    /// The container's name.
    pub container: &'a str,
    /// Its drain delay, in seconds.
    pub drain_delay: u64,
    /// Its request timeout, in seconds.
    pub request_timeout: u64,
}

impl Need<'_> {
    /// Drain delay + request timeout ([`needed`]).
    pub fn total(&self) -> u64 {
        needed(self.drain_delay, self.request_timeout)
    }
}

/// What the sidecars ask of the grace period after the longest drain
/// (`docs/plan.md`, "Sidecars and mesh proxies").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SidecarShutdown<'a> {
    /// Seconds: the longest classic sidecar's shutdown, or the native
    /// sidecars' shutdowns one after the other, whichever is longer.
    pub seconds: u64,
    /// The sidecar with the longest shutdown of its own: the one to look at.
    pub longest: &'a str,
}

/// The grace period would exceed `--max-grace`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct GraceTooLong {
    /// The grace period the pod would need.
    pub grace: u64,
    /// `--max-grace`.
    pub max: u64,
    /// The container that needs it.
    pub container: String,
    /// Its drain delay.
    pub drain_delay: u64,
    /// Its request timeout.
    pub request_timeout: u64,
    /// The sidecars' shutdown after the drain, when any.
    pub sidecar_shutdown: u64,
    /// The pod's margin.
    pub margin: u64,
    /// The annotation that contributes most: the likely mistake.
    pub key: String,
}

impl std::fmt::Display for GraceTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let GraceTooLong {
            grace,
            max,
            container,
            drain_delay,
            request_timeout,
            sidecar_shutdown,
            margin,
            key,
        } = self;
        write!(
            f,
            "terminationGracePeriodSeconds would be {grace}s (container {container}: drain delay {drain_delay}s + request timeout {request_timeout}s"
        )?;
        if *sidecar_shutdown > 0 {
            write!(f, ", then sidecar shutdown {sidecar_shutdown}s")?;
        }
        write!(
            f,
            ", plus margin {margin}s), above the maximum of {max}s (--max-grace); lower {key}, for example {key}: \"30s\""
        )
    }
}

/// What one container needs between deletion and the end of its last
/// request: its drain delay, then its request timeout.
pub fn needed(drain_delay: u64, request_timeout: u64) -> u64 {
    drain_delay.saturating_add(request_timeout)
}

/// The grace period the `needs` of a pod's containers call for, then its
/// sidecars' shutdown, with `margin` on top, or an error naming the likely
/// mistake when it exceeds `max`.
pub fn required<'a>(
    needs: impl IntoIterator<Item = Need<'a>>,
    sidecars: Option<SidecarShutdown<'_>>,
    margin: u64,
    max: u64,
) -> Result<u64, GraceTooLong> {
    let Some(longest) = needs.into_iter().max_by_key(Need::total) else {
        return Ok(margin);
    };
    let shutdown = sidecars.map_or(0, |s| s.seconds);
    let grace = longest
        .total()
        .saturating_add(shutdown)
        .saturating_add(margin);
    if grace <= max {
        return Ok(grace);
    }
    // Point at the biggest contributor: that is the likely mistake.
    let sidecar_key = sidecars.filter(|s| s.seconds > 0).map(|s| {
        (
            ann::per_container(ann::SIDECAR_SHUTDOWN, s.longest),
            s.seconds,
        )
    });
    let (key, _) = [
        (ann::MARGIN.to_string(), margin),
        (ann::DRAIN_DELAY.to_string(), longest.drain_delay),
        (ann::REQUEST_TIMEOUT.to_string(), longest.request_timeout),
    ]
    .into_iter()
    .chain(sidecar_key)
    .max_by_key(|(_, seconds)| *seconds)
    .unwrap_or((ann::REQUEST_TIMEOUT.to_string(), 0));
    Err(GraceTooLong {
        grace,
        max,
        container: longest.container.to_string(),
        drain_delay: longest.drain_delay,
        request_timeout: longest.request_timeout,
        sidecar_shutdown: shutdown,
        margin,
        key,
    })
}

/// The value to write: `Some(required)` when the pod has no grace period or
/// a shorter one; `None` when its own is long enough (never shortened).
pub fn to_write(current: Option<i64>, required: u64) -> Option<u64> {
    match current {
        Some(current) if u64::try_from(current).is_ok_and(|c| c >= required) => None,
        _ => Some(required),
    }
}

/// The grace period the pod ends up with.
pub fn resulting(current: Option<i64>, required: u64) -> u64 {
    to_write(current, required)
        .or_else(|| current.and_then(|g| u64::try_from(g).ok()))
        .unwrap_or(required)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_raise_never_lower() {
        assert_eq!(to_write(None, 40), Some(40));
        assert_eq!(to_write(Some(30), 40), Some(40));
        assert_eq!(to_write(Some(40), 40), None);
        assert_eq!(to_write(Some(90), 40), None);
        // A negative value is not a usable grace period: replaced.
        assert_eq!(to_write(Some(-1), 40), Some(40));
        assert_eq!(resulting(Some(90), 40), 90);
        assert_eq!(resulting(Some(30), 40), 40);
        assert_eq!(resulting(None, 40), 40);
    }

    #[test]
    fn sums_saturate() {
        assert_eq!(needed(3, 30), 33);
        assert_eq!(needed(u64::MAX, 1), u64::MAX);
    }
}
