//! What gracehook asks the API server, never on the request path: its version,
//! to choose the preStop style at start-up.

use thiserror::Error;

use crate::settings::PrestopStyle;

/// The native `sleep` action is on by default from this minor version.
pub const SLEEP_ACTION_SINCE: u32 = 30;

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("no usable cluster configuration (in-cluster or kubeconfig): {0}")]
    Config(#[source] kube::Error),
    #[error("asking the API server for its version: {0}")]
    Version(#[source] kube::Error),
    #[error("the API server reported an unreadable version {0:?}")]
    UnreadableVersion(String),
}

/// `"1.29"`, `"v1.30.2"`, `"30+"` (minor as some providers report it) -> minor.
pub fn parse_minor(version: &str) -> Option<u32> {
    let version = version.trim().trim_start_matches('v');
    let minor = match version.split_once('.') {
        Some(("1", rest)) => rest.split('.').next()?,
        Some(_) => return None,
        None => version,
    };
    let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub fn style_for_minor(minor: u32) -> PrestopStyle {
    if minor >= SLEEP_ACTION_SINCE {
        PrestopStyle::Sleep
    } else {
        PrestopStyle::Exec
    }
}

/// Asks the API server (in-cluster config, or the kubeconfig outside) for its
/// version. Discovery needs no RBAC beyond what every service account has.
pub async fn discover_style() -> Result<(PrestopStyle, String), ClusterError> {
    let client = kube::Client::try_default()
        .await
        .map_err(ClusterError::Config)?;
    let info = client
        .apiserver_version()
        .await
        .map_err(ClusterError::Version)?;
    let minor = parse_minor(&info.minor)
        .or_else(|| parse_minor(&info.git_version))
        .ok_or_else(|| ClusterError::UnreadableVersion(info.git_version.clone()))?;
    Ok((style_for_minor(minor), info.git_version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_versions_as_clusters_report_them() {
        assert_eq!(parse_minor("1.29"), Some(29));
        assert_eq!(parse_minor("v1.30.2"), Some(30));
        assert_eq!(parse_minor("v1.37.2-eks-1234"), Some(37));
        assert_eq!(parse_minor("31+"), Some(31));
        assert_eq!(parse_minor("2.1"), None);
        assert_eq!(parse_minor("latest"), None);
        assert_eq!(style_for_minor(29), PrestopStyle::Exec);
        assert_eq!(style_for_minor(30), PrestopStyle::Sleep);
    }
}
