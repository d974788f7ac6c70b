//! What every command takes from the process: one crypto provider, an async
//! runtime, and its input file or standard input.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::error::CommandError;

/// kube, tokio-rustls and rcgen could each bring a crypto provider: install
/// exactly one, before anything uses TLS.
pub(super) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let _ = provider.as_ref().clone().install_default();
    provider
}

pub(super) fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, CommandError> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(CommandError::Runtime)
}

/// A file's text, or standard input's for `-`.
pub(super) fn read_input(path: &Path) -> Result<String, CommandError> {
    let mut text = String::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    result.map_err(|source| CommandError::Read {
        path: if path.as_os_str() == "-" {
            "standard input".to_string()
        } else {
            path.display().to_string()
        },
        source,
    })?;
    Ok(text)
}
